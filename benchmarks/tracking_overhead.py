"""What `--report-to tensorboard` costs: epochs of one run with and without the tracker, side by side.

The run is set up once (data decoded, model and optimizer built, exactly as `tl_hub.training.trainer.train`
does); then each round trains one epoch with TensorBoard tracking (every step's loss, learning rate and
images/s, the epoch's validation metrics) and one without, in alternating order, both with the same epoch
number, so both do the same work on the same batches. Each epoch includes its validation pass, as in a run.
The figures are medians over the rounds; the overhead is the median of the per-round ratios, of wall time
and of this process's CPU time (which neighbours on a shared machine disturb less).

    python benchmarks/tracking_overhead.py --dataset ../shared/data/gtsrb-train-32 --rounds 7
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from tl_hub.recipes import get_recipe
from tl_hub.training.engine import make_accelerator
from tl_hub.training.tracking import RunLog, RunNames
from tl_hub.training.trainer import build_inputs, run_epoch, set_up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="synthetic", help="default: synthetic (use real GTSRB for figures)")
    p.add_argument("--recipe", default="lenet-gtsrb")
    p.add_argument("--rounds", type=int, default=7)
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
        tracked = RunLog(accelerator, RunNames("benchmark", "tracked", out / "logs"))
        tracked.start(run, 1, steps, inputs.optimizer, job.plan.group_names)
        untracked = RunLog(accelerator, RunNames("benchmark", "untracked", out / "logs"))  # never started
        run_epoch(job, inputs, 1, untracked)  # warm-up: allocator, oneDNN kernels
        wall: dict[str, list[float]] = {"tracked": [], "untracked": []}
        cpu: dict[str, list[float]] = {"tracked": [], "untracked": []}
        for r in range(args.rounds):
            order = (("tracked", tracked), ("untracked", untracked))
            for name, log in order if r % 2 == 0 else order[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                run_epoch(job, inputs, 2, log)  # the same epoch number: the same batches and augmentation
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            print(
                f"round {r + 1}: tracked {wall['tracked'][-1]:.2f} s ({cpu['tracked'][-1]:.2f} s CPU), "
                f"untracked {wall['untracked'][-1]:.2f} s ({cpu['untracked'][-1]:.2f} s CPU)"
            )
        tracked.finish()
        events = sum(f.stat().st_size for f in (out / "logs").rglob("events.out.tfevents.*"))

    print(f"{args.recipe} on {args.dataset}: {len(job.data.train)} training images, {steps} steps an epoch")
    for kind, times in (("wall", wall), ("CPU", cpu)):
        ratios = [t / u for t, u in zip(times["tracked"], times["untracked"], strict=True)]
        medians = {name: statistics.median(values) for name, values in times.items()}
        overhead = 100 * (statistics.median(ratios) - 1)
        print(
            f"{kind:>4}: tracked {medians['tracked']:.3f} s/epoch, untracked {medians['untracked']:.3f} "
            f"s/epoch; overhead {overhead:+.2f}% (median of {args.rounds} per-round ratios)"
        )
    print(f"TensorBoard event files: {events / 1024:.0f} KiB for {args.rounds} tracked epochs")


if __name__ == "__main__":
    main()
