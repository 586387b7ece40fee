"""Peak memory and time of `scripts/evaluate.py` on a VGG16 release at 224x224: the old fixed batch of 512
against the default batch, which follows the input size (64 at 224x224), with channels-last convolutions.

python benchmarks/evaluate_memory.py --images 512

The release is an untrained VGG16 (the recipe's architecture, random weights: memory and speed do not depend
on the values); the photos are random 300x240 JPEGs in an image folder. Each configuration runs in its own
process under /usr/bin/time -v, alternating, and the script prints the medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_release(directory: Path) -> Path:
    import torch

    from tests.conftest import write_fake_release
    from tl_hub.models import create_model
    from tl_hub.recipes import get_recipe

    run = get_recipe("vgg16-catsdogs").config.replace({"model.pretrained": None})
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=224, drop_rate=0.5)
    return write_fake_release(directory, model, run, ["cat", "dog"])


def make_photos(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "test" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (240, 300, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def measure(release: Path, photos: Path, batch: int | None) -> tuple[float, float]:
    """(peak resident memory in GB, wall seconds) of one evaluate.py process."""
    args = [str(ROOT / "scripts" / "evaluate.py"), str(release), "--dataset", str(photos), "--split", "test"]
    if batch is not None:
        args += ["--batch-size", str(batch)]
    result = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, *args], capture_output=True, text=True, check=True
    )
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    wall = re.search(
        r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr
    )
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return peak_kb / 2**20, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        release = make_release(Path(tmp) / "model")
        photos = make_photos(Path(tmp) / "photos", args.images)
        configs = {"batch 512 (the old default)": 512, "default (by input size)": None}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, batch in configs.items():
                results[name].append(measure(release, photos, batch))
                print(f"  {name}: {results[name][-1][0]:.2f} GB, {results[name][-1][1]:.1f} s", flush=True)
    print(f"\nVGG16 at 224x224, {args.images} photos, median of {args.rounds}:")
    for name, rows in results.items():
        peak = statistics.median(r[0] for r in rows)
        seconds = statistics.median(r[1] for r in rows)
        print(f"  {name:30s} peak {peak:5.2f} GB   {seconds:6.1f} s   {args.images / seconds:5.1f} images/s")


if __name__ == "__main__":
    main()
