"""What test-time views cost a prediction: one upload through `Predictor` (read, preprocess, forward, top-5),
with the release's views and with the image alone, in alternating rounds on the same image.

python benchmarks/views_cost.py RELEASE_DIR [--requests 200] [--threads N]

Prints p50 / p95 of each way and the ratio of the medians. Without views in the release's config.json, the
script adds the rendered-only recipes' (0.8, 0.9, 1.1, 1.2) for the measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import time

import numpy as np
import torch
from PIL import Image

from tl_hub.inference.predictor import Predictor
from tl_hub.recipes import SIGN_VIEWS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("release", help="a release directory")
    p.add_argument("--requests", type=int, default=200, help="predictions per way (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with_views = Predictor.from_pretrained(args.release, device="cpu")
    scales = with_views.preprocess.tta_scales or SIGN_VIEWS
    with_views.preprocess = dataclasses.replace(with_views.preprocess, tta_scales=scales)
    alone = Predictor(with_views.model, with_views.config, device="cpu")
    alone.preprocess = dataclasses.replace(alone.preprocess, tta_scales=())
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    upload = buffer.getvalue()
    times: dict[str, list[float]] = {"image alone": [], f"{len(scales) + 1} views": []}
    ways = list(zip(times, (alone, with_views), strict=True))
    for predictor in (alone, with_views):  # warm-up
        predictor(upload)
    for _ in range(args.requests):
        for name, predictor in ways:
            start = time.perf_counter()
            predictor(upload)
            times[name].append(time.perf_counter() - start)
    print(f"{args.release}: {args.requests} predictions each, alternating, {torch.get_num_threads()} threads")
    print("| way | p50 | p95 |\n|---|---|---|")
    for name, values in times.items():
        values = sorted(values)
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"| {name} | {statistics.median(values) * 1e3:.2f} ms | {p95 * 1e3:.2f} ms |")
    medians = [statistics.median(v) for v in times.values()]
    print(f"ratio of the medians: {medians[1] / medians[0]:.2f}x")


if __name__ == "__main__":
    main()
