"""VGG16 on the CPU: where the time goes, and what the feature cache saves.

1. The frozen base's forward (224x224 images/s) in fp32 NCHW, fp32 channels_last and bf16 autocast, as a
   share of this CPU's own float32 matmul peak (measured here), and one image through the whole network
   (the Space's case).
2. feature-extract training on the study's protocol (2,500 images, 100 epochs), measured side by side on a
   reduced size and projected: recomputing the frozen base every epoch (what a Keras generator loop does)
   against tl_hub's cache (the base once per image, then epochs over the head only).

    python benchmarks/vgg16_cpu.py --images 48 --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tl_hub.config import AugConfig, TransferConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.models import create_model, get_architecture
from tl_hub.recipes import get_recipe
from tl_hub.scoring import feature_inputs, image_inputs
from tl_hub.training.features import extract
from tl_hub.training.inputs import HeadOnly
from tl_hub.training.strategies import TransferPlan

RECIPE = get_recipe("vgg16-catsdogs").config
PRE = RECIPE.preprocess
STUDY_IMAGES, STUDY_EPOCHS = 2500, 100


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """GFLOPS of an n x n matrix product in `dtype`: the machine's own ceiling for dense work."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats=5) / 1e9


def forward_gflops(module: torch.nn.Module, x: torch.Tensor) -> float:
    """GFLOPs of one forward pass of `module` on the single image `x`, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() / 1e9


def single_image(model: torch.nn.Module, x: torch.Tensor, peak: float) -> None:
    """The Space's case: the whole network on one image, fp32 and bf16 (channels_last)."""
    gflops = forward_gflops(model, x)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        f32 = model(x)
        for bf16 in (False, True):

            def run(bf16: bool = bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model(x)

            seconds = timed(run, repeats=5)
            print(
                f"  one image, whole network, {'bf16' if bf16 else 'fp32'}: {seconds * 1000:6.1f} ms "
                f"({1 / seconds:5.2f} images/s, {gflops / seconds / peak:4.0%} of the fp32 peak)"
            )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b16 = model(x).float()
    print(f"  bf16 vs fp32 logits: relative L2 difference {((b16 - f32).norm() / f32.norm()).item():.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=224, drop_rate=0.5)
    images = torch.randint(0, 256, (args.images, 3, 224, 224), dtype=torch.uint8)
    labels = torch.arange(args.images) % 2
    x = image_inputs(PRE)(images[: args.batch])
    cpu = torch.device("cpu")

    def forward(layout: torch.memory_format, bf16: bool = False):
        def run() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model.features(x.contiguous(memory_format=layout))

        return run

    model.eval()
    peak = {dtype: matmul_peak(dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(
        f"this CPU's measured matmul peak ({torch.get_num_threads()} threads, 2048x2048 products, median): "
        f"fp32 {peak[torch.float32]:.0f} GFLOPS, bf16 {peak[torch.bfloat16]:.0f} GFLOPS"
    )
    gflops = forward_gflops(model.features, x[:1])
    rates = {"fp32, NCHW": args.batch / timed(forward(torch.contiguous_format))}
    model.features.to(memory_format=torch.channels_last)
    rates["fp32, channels_last"] = args.batch / timed(forward(torch.channels_last))
    rates["bf16 autocast, channels_last"] = args.batch / timed(forward(torch.channels_last, bf16=True))
    base = rates["fp32, NCHW"]
    print(f"VGG16 conv base forward, 224x224, batch {args.batch}, {gflops:.2f} GFLOPs per image:")
    for name, r in rates.items():
        share = r * gflops / peak[torch.float32]
        print(
            f"  {name:<36} {r:6.2f} images/s  {r / base:5.2f}x  {r * gflops:6.0f} GFLOPS = "
            f"{share:4.0%} of the fp32 peak"
        )
    single_image(model, x[:1], peak[torch.float32])
    with torch.inference_mode():
        f32 = model.features(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b16 = model.features(x.contiguous(memory_format=torch.channels_last)).float()
    print(f"  bf16 vs fp32 features: relative L2 difference {((b16 - f32).norm() / f32.norm()).item():.4f}")

    # feature-extract, side by side on args.images images.
    arch = get_architecture("vgg16")
    plan = TransferPlan(model, arch.base, TransferConfig(strategy="feature-extract"), lr=1e-4)
    opt = torch.optim.SGD(plan.groups, lr=1e-4, momentum=0.9)
    plan.start_epoch(model, 1)
    prepare = image_inputs(PRE, BatchAugment(AugConfig(rotation=20, hflip=True)))
    gen = torch.Generator().manual_seed(0)

    def uncached_epoch() -> None:
        for i in range(0, args.images, args.batch):
            loss = F.cross_entropy(
                model(prepare(images[i : i + args.batch], gen)), labels[i : i + args.batch]
            )
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    head = HeadOnly(model, arch)
    start = time.perf_counter()
    feats = extract(model, images, PRE, cpu)
    extract_s = time.perf_counter() - start
    plan.start_epoch(model, 1)

    # A head epoch over the study's 2,500 images (the cached maps repeated), at the recipe's batch size.
    study_feats = feats.repeat(STUDY_IMAGES // args.images + 1, 1, 1, 1)[:STUDY_IMAGES]
    study_labels = torch.arange(STUDY_IMAGES) % 2
    head_batch = RECIPE.train.batch_size

    def head_epoch(forward=head) -> None:
        for i in range(0, STUDY_IMAGES, head_batch):
            loss = F.cross_entropy(
                forward(feature_inputs(study_feats[i : i + head_batch])), study_labels[i : i + head_batch]
            )
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    uncached_s = timed(uncached_epoch, repeats=2)
    head_s = timed(head_epoch, repeats=3)
    conv_head_s = timed(lambda: head_epoch(model.forward_head), repeats=3)  # timm's 7x7-conv formulation
    per_image = {
        "uncached epoch": uncached_s / args.images,
        "extract": extract_s / args.images,
        "head epoch": head_s / STUDY_IMAGES,
    }
    uncached_total = per_image["uncached epoch"] * STUDY_IMAGES * STUDY_EPOCHS
    cached_total = (per_image["extract"] + per_image["head epoch"] * STUDY_EPOCHS) * STUDY_IMAGES
    print(
        f"feature-extract training (per image; the base measured on {args.images} images, batch {args.batch};"
    )
    print(f"the head on {STUDY_IMAGES} cached maps, batch {head_batch}):")
    print(f"  recompute the base every epoch: {per_image['uncached epoch'] * 1000:8.1f} ms per image-epoch")
    print(f"  cache: extract once           : {per_image['extract'] * 1000:8.1f} ms per image")
    print(f"  cache: head epoch             : {per_image['head epoch'] * 1000:8.2f} ms per image-epoch")
    print(f"    (timm's forward_head, 7x7 conv: {conv_head_s / STUDY_IMAGES * 1000:.2f} ms per image-epoch)")
    print(f"projected to the study's protocol ({STUDY_IMAGES} images, {STUDY_EPOCHS} epochs):")
    print(
        f"  recompute: {uncached_total / 3600:6.2f} h   cache: {cached_total / 60:6.1f} min   "
        f"speed-up {uncached_total / cached_total:.0f}x"
    )


if __name__ == "__main__":
    main()
