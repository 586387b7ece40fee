"""Do glibc's malloc thresholds cost VGG16 time here? The conv base forward (fp32, channels_last, 224x224) in
fresh processes, alternating default glibc settings with raised mmap/trim thresholds (the effect of
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_; a process cannot undo mallopt), medians of the rounds.

    python benchmarks/malloc_ab.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """
import ctypes, sys, time, torch
from tl_hub.models import create_model
if sys.argv[1] == "tuned":  # M_MMAP_THRESHOLD (-3) to glibc's 32 MiB ceiling, M_TRIM_THRESHOLD (-1) to 1 GiB
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(-3, 32 * 1024 * 1024) and libc.mallopt(-1, 1 << 30)
torch.manual_seed(0)
model = create_model("vgg16", num_classes=2, in_chans=3, img_size=224, drop_rate=0.5).eval()
model.features.to(memory_format=torch.channels_last)
x = torch.randn(16, 3, 224, 224).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    model.features(x)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.features(x)
        times.append(time.perf_counter() - start)
print(16 / sorted(times)[1])
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    rates: dict[str, list[float]] = {"default": [], "tuned": []}
    for _ in range(args.rounds):
        for mode in rates:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
            )
            rates[mode].append(float(out.stdout.strip().splitlines()[-1]))
    for mode, r in rates.items():
        rounds = ", ".join(f"{v:.2f}" for v in r)
        print(f"{mode:<8} median {statistics.median(r):5.2f} images/s  (rounds: {rounds})")
    print(f"speed-up {statistics.median(rates['tuned']) / statistics.median(rates['default']):.2f}x")


if __name__ == "__main__":
    main()
