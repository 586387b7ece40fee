"""Which head on VGG16's frozen ImageNet base reads cats and dogs best: the study's Flatten head or a pooled
one, at 224 or 256 pixels, with or without label smoothing.

The frozen base runs once over the photos (each training photo also mirrored) at two fields of view: timm's
`vgg16` preprocessing (resize 256, centre crop 224: a 7x7 pool5 map) and the whole 256x256 centre square
(`crop_pct` 1: an 8x8 map). On those maps:

- a logistic regression (scikit-learn, L2, fitted to convergence) on the globally averaged features;
- the pooled head (average pooling -> Dense 2) and the study's head (Flatten -> Dense 256 -> ReLU -> Dropout
  0.5 -> Dense 2), each trained as `vgg16-catsdogs-finetune` trains its head before block 5 joins: AdamW at
  1e-3, weight decay 0.05, batch 32, a cosine schedule over 5 epochs; with label smoothing 0 and 0.1, over
  three seeds (the median and the range are printed).

Validation is the recipe's: a class-balanced sample of 500 photos drawn with the seed, the rest to train.

    python benchmarks/vgg16_heads.py --dataset ../shared/data/catsdogs-train-2000 \\
        --pretrained-file ../shared/weights/vgg16.keras_in1k_conv/model.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time

import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from tl_hub.data.loading import prepare_data
from tl_hub.models.vgg import create_vgg16
from tl_hub.recipes import get_recipe
from tl_hub.training.weights import load_pretrained_base

RUN = get_recipe("vgg16-catsdogs-finetune").config
SEEDS = (0, 1, 2)


@torch.inference_mode()
def pool5(base: nn.Module, images: torch.Tensor, side: int, flip: bool) -> torch.Tensor:
    """The frozen base's output for uint8 256x256 `images`, at their centre `side` x `side` view."""
    mean = torch.tensor(RUN.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(RUN.preprocess.std).view(1, 3, 1, 1)
    margin = (images.shape[-1] - side) // 2
    out = []
    for i in range(0, len(images), 25):
        x = images[i : i + 25, :, margin : margin + side, margin : margin + side].float() / 255
        x = ((x.flip(-1) if flip else x) - mean) / std
        out.append(base(x.contiguous(memory_format=torch.channels_last)))
    return torch.cat(out)


def train_head(head: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothing: float, seed: int) -> nn.Module:
    """The recipe's head epochs: AdamW 1e-3, weight decay 0.05, batch 32, cosine over 5 epochs."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    epochs, batch = 5, 32
    total, step = epochs * math.ceil(len(y) / batch), 0
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            for group in opt.param_groups:
                group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(head(x[idx]), y[idx], label_smoothing=smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return head.eval()


def pooled_head() -> nn.Module:
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 2))
    nn.init.zeros_(head[-1].weight)  # as tl_hub starts a new classifier
    nn.init.zeros_(head[-1].bias)
    return head


def study_head() -> nn.Module:
    layers = (nn.Flatten(), nn.Linear(512 * 7 * 7, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 2))
    return nn.Sequential(*layers)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--pretrained-file", required=True)
    p.add_argument("--limit", type=int, default=None, help="N photos of each split (a smoke test)")
    args = p.parse_args()
    data_cfg = dataclasses.replace(RUN.data, dataset=args.dataset)
    data = prepare_data(data_cfg, RUN.preprocess, RUN.train.seed)  # stored as the whole 256x256 centre square
    train_images, yt = data.train.images[0 : len(data.train)], data.train.labels
    val_images, yv = data.validation.images[0 : len(data.validation)], data.validation.labels
    if args.limit:  # a seeded sample of each split
        keep_train = torch.randperm(len(yt), generator=torch.Generator().manual_seed(0))[: args.limit]
        keep_val = torch.randperm(len(yv), generator=torch.Generator().manual_seed(1))[: args.limit]
        train_images, yt, val_images, yv = (
            train_images[keep_train],
            yt[keep_train],
            val_images[keep_val],
            yv[keep_val],
        )
    n_val = len(yv)
    model = create_vgg16(num_classes=2)
    load_pretrained_base(model, args.pretrained_file, "features")
    base = model.features.eval().to(memory_format=torch.channels_last)
    maps = {}
    for side in (224, 256):
        start = time.perf_counter()
        train = torch.cat([pool5(base, train_images, side, flip) for flip in (False, True)])
        maps[side] = (train, pool5(base, val_images, side, False))
        print(f"base at {side}x{side}: {len(train) + n_val} images in {time.perf_counter() - start:.0f} s")
    y2 = yt.repeat(2)  # the training photos and their mirror images

    print("\n| head on the frozen base | field of view | label smoothing | validation accuracy |")
    print("|---|---|---|---|")
    for side in (224, 256):
        train, val = maps[side]
        fit = LogisticRegression(C=0.1, max_iter=5000).fit(train.mean((2, 3)).numpy(), y2.numpy())
        acc = (fit.predict(val.mean((2, 3)).numpy()) == yv.numpy()).mean()
        print(f"| logistic regression on the pooled features | {side} | - | {acc:.3f} |")
    heads = [("pooled: average pooling -> Dense 2", pooled_head, (224, 256))]
    heads.append(("the study's: Flatten -> Dense 256 -> Dense 2", study_head, (224,)))
    for name, build, sides in heads:
        for side in sides:
            train, val = maps[side]
            for smoothing in (0.0, 0.1):
                accs = []
                for seed in SEEDS:
                    torch.manual_seed(seed)
                    head = train_head(build(), train, y2, smoothing, seed)
                    with torch.no_grad():
                        accs.append(accuracy(head(val), yv))
                spread = f"{min(accs):.3f}-{max(accs):.3f}"
                print(f"| {name} | {side} | {smoothing:g} | {statistics.median(accs):.3f} ({spread}) |")


if __name__ == "__main__":
    main()
