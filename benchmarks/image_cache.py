"""Photos at 224x224: the disk image cache against the usual per-sample pipeline.

decode: one-time decoding images/s, single-threaded PIL (decode, resize, crop: what decoding into memory
does per image) against `tl_hub.data.store` (a process per core, and JPEGs at least twice the stored size
decoded by libjpeg at reduced scale), on the dataset's photos and on copies enlarged to 2000x1500, a phone
camera's size. It also prints how far reduced-scale decoding moves the stored pixels.

epoch: training throughput with random-resized-crop augmentation (timm's defaults: 8-100% of the image,
aspect 3/4-4/3, flips, colour jitter 0.4), side by side, epochs alternating:
- baseline, what example scripts do: a `datasets` dataset with per-sample torchvision transforms
  (RandomResizedCrop, RandomHorizontalFlip, ColorJitter, ToTensor, Normalize), DataLoader with 2 workers;
- tl_hub: shuffled batches read from the disk image cache, augmented as whole batches (`BatchAugment`).
Each pipeline is timed alone (data only: what the loader can feed) and feeding a small network's training
step (`--model`), with the network alone on a synthetic batch for its own pace. With `--device cuda` the
batches move to the GPU, where tl_hub augments them and the network trains.

    python benchmarks/image_cache.py --dataset ../shared/data/catsdogs-train-2000 --rounds 3
    python benchmarks/image_cache.py --only epoch --device cuda --longer-side
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import tempfile
import time

import datasets
import numpy as np
import timm
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader
from train_throughput import per_sample_loader  # benchmarks/, the script's own directory

from tl_hub.config import PreprocessConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.data.images import load_image
from tl_hub.data.loading import decode_split, resolve_columns
from tl_hub.data.preprocess import preprocess_image, storage_size
from tl_hub.recipes import AUGMENTATIONS
from tl_hub.scoring import image_inputs

PRE = PreprocessConfig(
    input_size=224,
    crop_pct=0.875,
    interpolation="bicubic",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)
AUG = AUGMENTATIONS["timm"]
BATCH = 64


def enlarged(ds: datasets.Dataset, column: str, n: int, longer: int = 2000) -> datasets.Dataset:
    """`n` of the photos re-encoded (JPEG quality 90) with their longer side at `longer` pixels."""
    rows = []
    for raw in ds.select(range(n)).cast_column(column, datasets.Image(decode=False))[column]:
        image = load_image(raw).convert("RGB")
        scale = longer / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
        )
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        rows.append({"bytes": buf.getvalue(), "path": None})
    features = datasets.Features(
        {column: datasets.Image(), **{k: v for k, v in ds.features.items() if k != column}}
    )
    others = {k: ds.select(range(n))[k] for k in ds.features if k != column}
    return datasets.Dataset.from_dict({column: rows, **others}, features=features)


def single_threaded_pil(ds: datasets.Dataset, column: str) -> float:
    """Seconds to decode and preprocess every photo at the storage side in this process, full decoding."""
    torch.set_num_threads(1)
    side = storage_size(PRE)
    start = time.perf_counter()
    for raw in ds.cast_column(column, datasets.Image(decode=False))[column]:
        preprocess_image(load_image(raw), PRE, side)
    torch.set_num_threads(os.cpu_count() or 1)
    return time.perf_counter() - start


def tl_hub_store(ds: datasets.Dataset, column: str, label: str) -> float:
    """Seconds to build the disk image cache of `ds` (a fresh cache directory every time)."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TL_HUB_CACHE"] = cache
        start = time.perf_counter()
        decode_split(ds, column, label, PRE, "train", disk=True)
        return time.perf_counter() - start


def drift(ds: datasets.Dataset, column: str) -> float:
    """Mean absolute difference (grey levels) between reduced-scale and full decoding, stored pixels."""
    side = storage_size(PRE)
    diffs = []
    for raw in ds.cast_column(column, datasets.Image(decode=False))[column][:20]:
        full = preprocess_image(load_image(raw), PRE, side)
        fast = preprocess_image(load_image(raw, draft=256), PRE, side)
        diffs.append((full.int() - fast.int()).abs().float().mean().item())
    return float(np.mean(diffs))


def decode_benchmark(ds: datasets.Dataset, column: str, label: str, rounds: int, big: int) -> None:
    sets = {
        f"{len(ds)} dataset photos": (ds, label),
        f"{big} photos at 2000x1500": (enlarged(ds, column, big), label),
    }
    print(f"\none-time decoding to the stored {storage_size(PRE)}x{storage_size(PRE)}, median of {rounds}:")
    for name, (data, lab) in sets.items():
        pil = statistics.median(single_threaded_pil(data, column) for _ in range(rounds))
        store = statistics.median(tl_hub_store(data, column, lab) for _ in range(rounds))
        n = len(data)
        print(
            f"  {name:28s} single-threaded PIL {n / pil:7.0f} images/s | tl_hub cache "
            f"{n / store:7.0f} images/s | {pil / store:5.2f}x"
        )
        if data is not ds:
            print(
                f"  {'':28s} reduced-scale decoding moves the stored pixels by "
                f"{drift(data, column):.2f} grey levels on average"
            )


def baseline_loader(ds: datasets.Dataset, column: str, label: str, workers: int, pin: bool) -> DataLoader:
    transform = T.Compose(
        [
            T.RandomResizedCrop(224, scale=AUG.crop_scale, ratio=AUG.crop_ratio),  # bilinear, as tl_hub
            T.RandomHorizontalFlip(),
            T.ColorJitter(AUG.brightness, AUG.contrast, AUG.saturation),
            T.ToTensor(),
            T.Normalize(PRE.mean, PRE.std),
        ]
    )

    return per_sample_loader(ds, transform, (column, label), BATCH, workers, pin)


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def epoch(
    loader: DataLoader, prepare, model: torch.nn.Module | None, optimizer, device: torch.device
) -> float:
    """Seconds for one pass: each batch moved to `device` and made ready for the model there, and its
    training step when `model`."""
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        x = prepare(images, generator)
        if model is not None:
            train_step(model, optimizer, x, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def model_alone(model: torch.nn.Module, optimizer, n: int, device: torch.device) -> float:
    """Seconds for an epoch's training steps on one synthetic batch already on `device`: the network's own
    pace, which no data path can beat."""
    x = torch.randn(BATCH, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (BATCH,), device=device)
    train_step(model, optimizer, x, y)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(-(-n // BATCH)):
        train_step(model, optimizer, x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def epoch_benchmark(
    ds: datasets.Dataset, column: str, label: str, args: argparse.Namespace, photos: str
) -> None:
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TL_HUB_CACHE"] = cache
        split, _ = decode_split(ds, column, label, PRE, "train", disk=True)
        ours = split.loader(BATCH)
        theirs = baseline_loader(ds, column, label, args.workers, pin=device.type == "cuda")
        augment = image_inputs(PRE, BatchAugment(AUG))
        model = timm.create_model(args.model, num_classes=2).to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        for with_model in (False, True):
            net = model if with_model else None
            times: dict[str, list[float]] = {"baseline": [], "tl_hub": []}
            for _ in range(args.rounds):
                times["baseline"].append(epoch(theirs, lambda x, g: x, net, optimizer, device))
                times["tl_hub"].append(epoch(ours, augment, net, optimizer, device))
            if not with_model:  # what the host does when the augmentation runs on an accelerator
                times["tl_hub, reading only"] = [
                    epoch(ours, lambda x, g: x, None, None, device) for _ in range(args.rounds)
                ]
            else:
                times["model alone"] = [
                    model_alone(model, optimizer, len(ds), device) for _ in range(args.rounds)
                ]
            what = f"feeding {args.model}'s training step" if with_model else "data only"
            base = statistics.median(times["baseline"])
            head = f"epoch of {len(ds)} photos ({photos}) at 224x224 on {device}, {what}"
            print(f"\n{head}, median of {args.rounds}:")
            for name, t in times.items():
                s = statistics.median(t)
                print(f"  {name:20s} {s:7.1f} s/epoch {len(ds) / s:7.0f} images/s  {base / s:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="../shared/data/catsdogs-train-2000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=200, help="photos enlarged to 2000x1500 for decoding")
    parser.add_argument(
        "--model", default="mobilenetv3_small_050", help="a small timm network, random weights"
    )
    parser.add_argument("--only", choices=["decode", "epoch"], default=None)
    parser.add_argument("--device", default="cpu", help="where the augmentation and the network run (cuda)")
    parser.add_argument("--workers", type=int, default=2, help="the baseline DataLoader's worker processes")
    parser.add_argument(
        "--longer-side",
        type=int,
        nargs="*",
        default=[640],
        help="also time epochs on photos re-encoded this big",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ds = datasets.load_dataset(args.dataset)["train"]
    column, label = resolve_columns(ds.features, None, None)
    print(f"{args.dataset}: {len(ds)} photos, {os.cpu_count()} CPU cores, torch {torch.__version__}")
    if args.only != "epoch":
        decode_benchmark(ds, column, label, args.rounds, args.big)
    if args.only != "decode":
        epoch_benchmark(ds, column, label, args, "the dataset's photos")
        for side in args.longer_side:
            bigger = enlarged(ds, column, len(ds), side)
            epoch_benchmark(bigger, column, label, args, f"longer side {side} px")


if __name__ == "__main__":
    main()
