"""LeNet-5 training speed on real GTSRB: tl_hub's pipeline against the common per-sample pipeline.

Baseline: what the usual example scripts do. A `datasets` dataset with a torchvision transform applied
per sample (decode PIL, grayscale, CLAHE, random rotation, random Gaussian blur, to tensor, normalize),
batched by a DataLoader, every epoch.
tl_hub: decode and preprocess every image once per run (a uint8 tensor), then augment whole batches as
tensors inside `tl_hub.training.engine.train_one_epoch`.

Both train the same LeNet-5 with Adam on the same images; epochs alternate between the pipelines so that
machine noise hits both alike, and the figures are medians.

    python benchmarks/train_throughput.py --dataset ../shared/data/gtsrb-train-32 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import datasets
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from tl_hub.data.augment import BatchAugment
from tl_hub.data.loading import decode_split
from tl_hub.data.preprocess import equalize
from tl_hub.models import LeNet5
from tl_hub.recipes import get_recipe
from tl_hub.scoring import image_inputs
from tl_hub.training.engine import train_one_epoch

RECIPE = get_recipe("lenet-gtsrb").config
PRE, AUG, BATCH = RECIPE.preprocess, RECIPE.aug, RECIPE.train.batch_size


def baseline_loader(ds: datasets.Dataset, workers: int) -> DataLoader:
    transform = T.Compose(
        [
            T.Grayscale(),
            T.Resize((PRE.input_size, PRE.input_size)),
            T.Lambda(lambda im: equalize(im, PRE)),  # the recipe's CLAHE, per sample
            T.RandomRotation(AUG.rotation),
            T.RandomApply([T.GaussianBlur(5, sigma=AUG.blur_sigma)], p=AUG.blur_prob),
            T.ToTensor(),
            T.Normalize(PRE.mean, PRE.std),
        ]
    )

    return per_sample_loader(ds, transform, ("image", "label"), BATCH, workers)


def per_sample_loader(
    ds: datasets.Dataset,
    transform: Callable,
    columns: tuple[str, str],
    batch_size: int,
    workers: int,
    pin: bool = False,
) -> DataLoader:
    """What example scripts do, the baseline of tl_hub's throughput benchmarks: a `datasets` dataset with
    per-sample torchvision transforms, shuffled batches from a DataLoader with `workers` processes."""
    image, label = columns

    def apply(batch: dict) -> dict:
        batch["pixel_values"] = [transform(im.convert("RGB")) for im in batch[image]]
        return batch

    def collate(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([r["pixel_values"] for r in rows]), torch.tensor([r[label] for r in rows])

    return DataLoader(
        ds.with_transform(apply),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        persistent_workers=workers > 0,
    )


def baseline_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, loader: DataLoader) -> None:
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="../shared/data/gtsrb-train-32")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs per pipeline")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="baseline DataLoader workers")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    ds = datasets.load_dataset(args.dataset)["train"]
    n = len(ds)
    start = time.perf_counter()
    split, _ = decode_split(ds, "image", "label", PRE, "train")
    decode_s = time.perf_counter() - start

    accelerator = Accelerator(cpu=True)
    ours_model = LeNet5(num_classes=43, drop_rate=RECIPE.model.drop_rate)
    ours_opt = torch.optim.Adam(ours_model.parameters(), lr=RECIPE.train.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(ours_opt, lambda s: 1.0)
    loader = DataLoader(TensorDataset(split.images, split.labels), batch_size=BATCH, shuffle=True)
    ours_model, ours_opt, loader, sched = accelerator.prepare(ours_model, ours_opt, loader, sched)
    prepare = image_inputs(PRE, BatchAugment(AUG))
    generator = torch.Generator().manual_seed(0)

    def ours_epoch() -> None:
        ours_model.train()
        train_one_epoch(ours_model, loader, ours_opt, sched, accelerator, prepare, generator, desc="tl_hub")

    pipelines = {"tl_hub": ours_epoch}
    for w in args.workers:
        model = LeNet5(num_classes=43, drop_rate=RECIPE.model.drop_rate)
        opt = torch.optim.Adam(model.parameters(), lr=RECIPE.train.lr)
        bl = baseline_loader(ds, w)
        pipelines[f"baseline, {w} workers"] = lambda m=model, o=opt, b=bl: baseline_epoch(m, o, b)

    times: dict[str, list[float]] = {k: [] for k in pipelines}
    for _ in range(args.rounds):
        for name, run in pipelines.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    ours = statistics.median(times["tl_hub"])
    best_baseline = min(statistics.median(v) for k, v in times.items() if k != "tl_hub")
    print(
        f"GTSRB train set: {n} images of 32x32; {torch.get_num_threads()} torch threads; "
        f"median of {args.rounds} epochs each"
    )
    print(f"{'pipeline':<22} {'s/epoch':>8} {'images/s':>9} {'speed-up':>9}")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:<22} {med:8.2f} {n / med:9.0f} {best_baseline / med:8.2f}x")
    print(
        f"tl_hub one-time decode + preprocess: {decode_s:.1f} s "
        f"({decode_s / 20:.2f} s per epoch over the recipe's 20 epochs; "
        f"speed-up with it included: {best_baseline / (ours + decode_s / 20):.2f}x)"
    )


if __name__ == "__main__":
    main()
