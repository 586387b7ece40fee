"""What `--report-to tensorboard` costs: training steps with and without the tracker, side by side.

The run is set up once (data decoded, model and optimizer built, exactly as `tl_hub.training.trainer.train`
does) and trains whole epochs with `train_one_epoch`. The steps go in blocks of `--block` steps, tracked and
untracked in turn (every step's loss, learning rate and images/s to TensorBoard, or nothing), and each pair of
neighbouring blocks gives a ratio of their times: a neighbour's burst on a shared machine lasts seconds and
hits both blocks of a pair alike, where it would hit one of two whole epochs. The overhead is the median of
the ratios, less one; what an epoch's end adds (its validation figures) is timed on its own and added as a
share of the epoch.

On a machine shared with busy neighbours even paired wall times scatter by tens of percent, so the script
also measures the tracking's own cost directly: the CPU time (every thread of the process, the TensorBoard
writer's included) of the same step log sending `--direct-steps` steps to a fresh TensorBoard run, per step,
against the CPU time of the quickest untracked block's steps (the least disturbed: an upper bound of the
share).

    python benchmarks/tracking_overhead.py --dataset ../shared/data/gtsrb-train-32 --epochs 7
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tl_hub.accelerator import make_accelerator
from tl_hub.recipes import get_recipe
from tl_hub.scoring import score
from tl_hub.training.engine import train_one_epoch
from tl_hub.training.inputs import build_inputs
from tl_hub.training.tracking import RunLog, RunNames
from tl_hub.training.trainer import set_up


class Blocks:
    """`on_step` for train_one_epoch: the tracker's step log in every other block, and each block's time."""

    def __init__(self, log: RunLog, epoch: int, block: int):
        self.tracked_step = log.start_epoch(epoch)
        self.block, self.first_tracked = block, epoch % 2 == 0  # which block of a pair goes first alternates
        self.i, self.clock, self.cpu = 0, time.perf_counter(), time.process_time()
        self.times: dict[bool, list[float]] = {True: [], False: []}
        self.cpu_times: dict[bool, list[float]] = {True: [], False: []}

    def __call__(self, loss: torch.Tensor, images: int) -> None:
        tracked = (self.i // self.block) % 2 == (0 if self.first_tracked else 1)
        if tracked:
            self.tracked_step(loss, images)
        self.i += 1
        if self.i % self.block == 0:
            now, cpu = time.perf_counter(), time.process_time()
            self.times[tracked].append(now - self.clock)
            self.cpu_times[tracked].append(cpu - self.cpu)
            self.clock, self.cpu = now, cpu


def direct_cost(accelerator, optimizer, group_names, logs_dir: Path, steps: int) -> float:
    """CPU seconds per step of the step log sending `steps` steps to a TensorBoard run of its own."""
    log = RunLog(accelerator, RunNames("benchmark", "direct", logs_dir))
    log.start(get_recipe("lenet-gtsrb").config, 1, steps, optimizer, group_names)
    on_step = log.start_epoch(1)
    loss = torch.tensor(1.0)
    start = time.process_time()
    for _ in range(steps):
        on_step(loss, 128)
    log.finish()  # waits for the writer thread to have written everything
    return (time.process_time() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="synthetic", help="default: synthetic (use real GTSRB for figures)")
    p.add_argument("--recipe", default="lenet-gtsrb")
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--block", type=int, default=20, help="steps per block (a multiple of the log's window)")
    p.add_argument("--direct-steps", type=int, default=5000)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    run = get_recipe(args.recipe).config.replace({"data.dataset": args.dataset})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        out.mkdir()
        accelerator = make_accelerator(("tensorboard",), out / "logs")
        job = set_up(run, out, accelerator, resume=False)
        inputs = build_inputs(job)
        steps = len(inputs.train_loader)
        log = RunLog(accelerator, RunNames("benchmark", "tracked", out / "logs"))
        log.start(run, 1, steps, inputs.optimizer, job.plan.group_names)
        ratios, epoch_seconds, end_seconds, untracked_cpu = [], [], [], []
        for epoch in range(1, args.epochs + 1):
            job.plan.start_epoch(job.model, epoch)
            inputs.train_loader.set_epoch(epoch)
            blocks = Blocks(log, epoch, args.block)
            generator = torch.Generator().manual_seed(epoch)
            start = time.perf_counter()
            stats = train_one_epoch(
                inputs.trainee,
                inputs.train_loader,
                inputs.optimizer,
                inputs.scheduler,
                accelerator,
                inputs.train_prepare,
                generator,
                on_step=blocks,
            )
            loader = inputs.eval_loaders["validation"]
            validation = score(
                inputs.trainee, loader, accelerator, inputs.eval_prepare, job.data.label_names, "validation"
            )
            epoch_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            row = {"train_loss": stats["loss"], "train_accuracy": stats["accuracy"]}
            log.end_epoch(epoch, row, validation)
            end_seconds.append(time.perf_counter() - start)
            pairs = list(zip(blocks.times[True], blocks.times[False], strict=False))
            ratios += [t / u for t, u in pairs]
            untracked_cpu += blocks.cpu_times[False]
            print(f"epoch {epoch}: {epoch_seconds[-1]:.2f} s, {len(pairs)} block pairs", flush=True)
        log.finish()
        events = sum(f.stat().st_size for f in (out / "logs").rglob("events.out.tfevents.*"))
        logs = out / "logs"
        per_step = direct_cost(accelerator, inputs.optimizer, job.plan.group_names, logs, args.direct_steps)

    epoch = statistics.median(epoch_seconds)
    steps_overhead = statistics.median(ratios) - 1
    end = statistics.median(end_seconds)
    # the steps' overhead counted on the whole epoch (an upper bound: validation is not tracked per step)
    total = steps_overhead + end / epoch
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"{args.recipe} on {args.dataset}: {len(job.data.train)} training images, {steps} steps an epoch")
    print(f"an epoch (half its steps tracked, with validation): median {epoch:.2f} s over {args.epochs}")
    print(
        f"tracked / untracked block of {args.block} steps: median ratio {1 + steps_overhead:.4f} "
        f"(quartiles {quartiles[0]:.4f}, {quartiles[2]:.4f}; {len(ratios)} pairs)"
    )
    print(f"an epoch's end (validation figures): {1000 * end:.2f} ms")
    print(f"overhead of --report-to tensorboard: {100 * total:+.2f}% of an epoch")
    print(
        f"TensorBoard event files: {events / 1024:.0f} KiB for {args.epochs} epochs, half their steps tracked"
    )
    quickest, typical = min(untracked_cpu) / args.block, statistics.median(untracked_cpu) / args.block
    print(
        f"direct: tracking takes {1e6 * per_step:.1f} us of CPU a step ({args.direct_steps} steps); a "
        f"training step {1e3 * quickest:.2f} ms of CPU at the quickest (median {1e3 * typical:.2f} ms): "
        f"{100 * per_step / quickest:.2f}% at most"
    )


if __name__ == "__main__":
    main()
