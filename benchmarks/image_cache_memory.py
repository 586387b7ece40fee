"""Peak memory of a 224x224 photo training run from 2,000 to 50,000 photos: the disk cache keeps it flat.

Makes image folders of N distinct JPEG photos (cat/ and dog/ subfolders: each source photo re-encoded with its
own random crop, flip and colour shift), then runs the real entry point on each, under `/usr/bin/time -v`,
with a fresh cache:

    scripts/train.py --model MODEL --no-pretrained --strategy finetune-all --augment timm \
        --dataset FOLDER --epochs 1 --batch-size 64 --val-size 200 --image-cache CACHE

and prints the peak resident memory (the largest process: the trainer, or a decoding worker) and the time.
`--image-cache memory` (decoded images held as one tensor, 150 KB each at 224x224) is run at the smaller
size for comparison.

    python benchmarks/image_cache_memory.py --dataset ../shared/data/catsdogs-train-2000 --sizes 2000 50000
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SOURCES: list[tuple[bytes, str]] = []


def _variant(i: int) -> tuple[int, bytes, str]:
    """Photo i: source photo i % len(SOURCES), cropped, maybe mirrored and tinted, as its own JPEG."""
    raw, name = SOURCES[i % len(SOURCES)]
    rng = np.random.default_rng(i)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    w, h = image.size
    cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    tint = np.clip(np.asarray(image, dtype=np.float32) * rng.uniform(0.9, 1.1, 3), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(tint).save(buf, "JPEG", quality=90)
    return i, buf.getvalue(), name


def make_folder(root: Path, n: int) -> Path:
    folder = root / f"photos-{n}"
    if folder.exists():
        return folder
    tmp = root / f".photos-{n}"
    with multiprocessing.get_context("fork").Pool() as pool:
        for i, data, name in pool.imap_unordered(_variant, range(n), chunksize=64):
            (tmp / "train" / name).mkdir(parents=True, exist_ok=True)
            (tmp / "train" / name / f"{i:06d}.jpg").write_bytes(data)
    tmp.rename(folder)
    return folder


def run(folder: Path, cache: str, model: str, work: Path) -> tuple[float, float]:
    """(peak resident GB, wall seconds) of one training run with a fresh cache."""
    out = work / f"run-{folder.name}-{cache}"
    cmd = [
        "/usr/bin/time", "-v", sys.executable, str(ROOT / "scripts" / "train.py"),
        "--model", model, "--no-pretrained", "--strategy", "finetune-all", "--augment", "timm",
        "--dataset", str(folder), "--epochs", "1", "--batch-size", "64", "--val-size", "200",
        "--image-cache", cache, "--output-dir", str(out),
    ]  # fmt: skip
    env = {**os.environ, "TL_HUB_CACHE": tempfile.mkdtemp(dir=work), "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    return peak_kb / 2**20, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="../shared/data/catsdogs-train-2000")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 50000])
    parser.add_argument("--model", default="test_efficientnet", help="a timm network (random weights)")
    parser.add_argument("--work", default=None, help="where the folders and runs go (default: a temp dir)")
    args = parser.parse_args()
    ds = datasets.load_dataset(args.dataset)["train"]
    names = ds.features["labels" if "labels" in ds.features else "label"].names
    label = "labels" if "labels" in ds.features else "label"
    raw = ds.cast_column("image", datasets.Image(decode=False))
    SOURCES.extend((r["bytes"], names[y]) for r, y in zip(raw["image"], raw[label], strict=True))
    work = Path(args.work or tempfile.mkdtemp(prefix="tl_hub-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{args.model} at 224x224, one epoch, --augment timm; work directory {work}")
    rows = []
    for n in sorted(args.sizes):
        folder = make_folder(work, n)
        caches = ["disk", "memory"] if n == min(args.sizes) else ["disk"]
        for cache in caches:
            peak, seconds = run(folder, cache, args.model, work)
            rows.append((n, cache, peak, seconds))
            print(
                f"  {n:6d} photos  --image-cache {cache:6s}  peak {peak:5.2f} GB  {seconds:6.0f} s",
                flush=True,
            )
    disk = [r for r in rows if r[1] == "disk"]
    if len(disk) > 1:
        growth = disk[-1][2] - disk[0][2]
        print(f"peak growth from {disk[0][0]} to {disk[-1][0]} photos on the disk cache: {growth:+.2f} GB")


if __name__ == "__main__":
    main()
