"""VGG16 finetune-top: the frozen-prefix cache against running the whole network every epoch, side by side.

finetune-top trains VGG16's last conv block (conv5_1-5_3) and the head; blocks 1-4 never train. Without the
cache every epoch runs the whole network on live augmented images (blocks 1-4 forward, block 5 and the head
forward and backward). With it (`--cache-views K`) blocks 1-4 run once per image and view, and each epoch
trains block 5 and the head on their cached output (16x16x512 at the recipe's 256x256). Both are timed here
in alternating rounds on the same images, with the trainer's own modules (`TopOnly`, the batch preparation),
and the ratio of the medians printed; then the one-off cost of filling the cache, per image and view.

    python benchmarks/vgg16_finetune.py --images 64 --batch 32 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tl_hub.data.augment import BatchAugment
from tl_hub.models import create_model, get_architecture
from tl_hub.recipes import get_recipe
from tl_hub.scoring import feature_inputs, image_inputs
from tl_hub.training.features import bf16_pays, extract
from tl_hub.training.inputs import TopOnly
from tl_hub.training.strategies import TransferPlan

RUN = get_recipe("vgg16-catsdogs-finetune").config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    pre, cpu = RUN.preprocess, torch.device("cpu")
    model = create_model(
        "vgg16",
        num_classes=2,
        in_chans=3,
        img_size=pre.input_size,
        drop_rate=RUN.model.drop_rate,
        pooled_head=RUN.model.pooled_head,
    )
    model.to(memory_format=torch.channels_last)  # what both paths run in (extraction sets it too)
    arch = get_architecture("vgg16")
    plan = TransferPlan(model, arch.base, RUN.transfer, lr=RUN.train.lr)
    epoch = RUN.transfer.head_epochs + 1  # a fine-tuning epoch: block 5 and the head train
    plan.start_epoch(model, epoch)
    optimizer = torch.optim.AdamW(plan.groups, lr=RUN.train.lr)
    images = torch.randint(0, 256, (args.images, 3, pre.input_size, pre.input_size), dtype=torch.uint8)
    labels = torch.arange(args.images) % 2
    live_prepare = image_inputs(pre, BatchAugment(RUN.aug))
    bf16 = bf16_pays(cpu)
    start = time.perf_counter()
    prefix = extract(
        model,
        images,
        pre,
        cpu,
        bf16,
        BatchAugment(RUN.aug),
        torch.Generator().manual_seed(0),
        kind=plan.prefix_kind,
    )
    extract_s = (time.perf_counter() - start) / args.images
    plan.start_epoch(model, epoch)  # extraction left the model in eval mode
    top = TopOnly(model, arch, plan.prefix_kind)

    def steps(forward, inputs, prepare) -> float:
        generator = torch.Generator().manual_seed(1)
        begin = time.perf_counter()
        for i in range(0, len(inputs), args.batch):
            x = prepare(inputs[i : i + args.batch], generator).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(forward(x), labels[i : i + args.batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - begin) / len(inputs)

    steps(model, images[: args.batch], live_prepare)  # warm-up: oneDNN picks its kernels
    steps(top, prefix[: args.batch], feature_inputs)
    live, cached = [], []
    for _ in range(args.rounds):
        live.append(steps(model, images, live_prepare))
        cached.append(steps(top, prefix, feature_inputs))
    live_s, cached_s = statistics.median(live), statistics.median(cached)
    print(
        f"VGG16 finetune-top epoch, {pre.input_size}x{pre.input_size}, batch {args.batch}, "
        f"{args.images} images, {args.rounds} rounds, "
        f"{torch.get_num_threads()} threads (per image, medians):"
    )
    print(
        f"  whole network every epoch (live images) : {live_s * 1000:7.1f} ms  rounds "
        + ", ".join(f"{t * 1000:.1f}" for t in live)
    )
    print(
        f"  block 5 + head on the prefix cache      : {cached_s * 1000:7.1f} ms  rounds "
        + ", ".join(f"{t * 1000:.1f}" for t in cached)
    )
    print(f"  speed-up per fine-tuning epoch          : {live_s / cached_s:7.2f}x")
    print(
        f"  filling the cache, once per image and view ({'bf16' if bf16 else 'fp32'}): "
        f"{extract_s * 1000:.1f} ms"
    )
    train = RUN.data.train_size - RUN.data.val_size if RUN.data.train_size else 1500
    views, epochs = RUN.transfer.cache_views, RUN.train.epochs
    print(
        f"projected to the recipe ({train} training images, {epochs} epochs, {views} views; validation not "
        "counted):"
    )
    print(
        f"  live: {train * epochs * live_s / 60:5.1f} min   cache: "
        f"{train * (views * extract_s + epochs * cached_s) / 60:5.1f} min (first run), "
        f"{train * epochs * cached_s / 60:5.1f} min (cache filled)"
    )


if __name__ == "__main__":
    main()
