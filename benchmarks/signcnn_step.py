"""SignCNN's training step on the CPU: images/s of signcnn and signcnn_small, in PyTorch's default layout
(NCHW) and channels-last (`--channels-last`), side by side.

One training step (forward, cross-entropy, backward, AdamW) on a random 32x32 colour batch, the network built
by tl_hub's registry as the recipes build it. The four variants take turns for `--rounds` rounds of `--steps`
steps each (after a warm-up), so that machine noise falls on all of them; the figures are medians over rounds,
with the ratio to signcnn in NCHW.

    python benchmarks/signcnn_step.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tl_hub.models import create_model


def stepper(architecture: str, channels_last: bool, batch: int):
    """A function that runs `steps` training steps and returns their seconds."""
    torch.manual_seed(0)
    model = create_model(architecture, num_classes=43, in_chans=3, img_size=32, drop_rate=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 43, (batch,))
    if channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    variants = {
        (arch, layout): stepper(arch, layout == "channels-last", args.batch)
        for arch in ("signcnn", "signcnn_small")
        for layout in ("NCHW", "channels-last")
    }
    for run in variants.values():
        run(3)  # warm-up: oneDNN picks its kernels on the first calls
    rates: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant, run in variants.items():
            rates[variant].append(args.batch * args.steps / run(args.steps))
    base = statistics.median(rates[("signcnn", "NCHW")])
    threads = torch.get_num_threads()
    print(f"training step, batch {args.batch}, 32x32x3, {threads} threads; medians of {args.rounds} rounds")
    print("| network | layout | images/s | vs signcnn NCHW |")
    print("|---|---|---|---|")
    for (arch, layout), values in rates.items():
        rate = statistics.median(values)
        print(f"| {arch} | {layout} | {rate:.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
