"""Time to accuracy on real GTSRB: validation accuracy against training seconds, sign recipes side by side.

python benchmarks/signs_time_to_accuracy.py --dataset ../shared/data/gtsrb-train-32 \
    --recipes cnn-gtsrb-fast cnn-gtsrb --runs 3 1

Each recipe is trained `--runs` times (one count for all, or one per recipe) with tl_hub's own trainer, as
the README runs it: the recipe's seed, so the same track-held-out validation split for every run and recipe
(`--seed S` for another). Runs alternate between the recipes, so a slower or busier stretch of the machine
falls on every recipe. Training seconds are the trainer's own per-epoch times (training and validation; not
decoding, which every recipe shares). Prints, per recipe, the median over runs of the training time and of the
final accuracy, and the curve (median accuracy after each epoch against median cumulative seconds); `--plot
FILE` draws the curves. A finished run is read back, not rerun, so the script can be stopped and started
again (OUTPUT_DIR/<recipe>/seed-<seed>-run-<i>, default runs/time-to-accuracy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_hub.cli import setup_logging  # noqa: E402
from tl_hub.recipes import get_recipe  # noqa: E402


def history(recipe: str, dataset: str, seed: int | None, out: Path) -> list[dict]:
    """The per-epoch history of `recipe` trained on `dataset` with `seed` (trained now unless done before)."""
    from tl_hub.accelerator import make_accelerator
    from tl_hub.training.trainer import train

    metrics = out / "model" / "metrics.json"
    if not metrics.is_file():
        run = get_recipe(recipe).config.replace({"data.dataset": dataset})
        if seed is not None:
            run = run.replace({"train.seed": seed})
        train(run, out, make_accelerator([], out / "logs"))
    return json.loads(metrics.read_text())["history"]


def curve(histories: list[list[dict]]) -> list[tuple[float, float]]:
    """(median cumulative seconds, median validation accuracy) after each epoch, over runs."""
    points = []
    for epoch in range(len(histories[0])):
        seconds = [sum(h["seconds"] for h in run[: epoch + 1]) for run in histories]
        accuracy = [run[epoch]["val_accuracy"] for run in histories]
        points.append((statistics.median(seconds), statistics.median(accuracy)))
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="real GTSRB, e.g. ../shared/data/gtsrb-train-32")
    p.add_argument("--recipes", nargs="+", default=["cnn-gtsrb-fast", "cnn-gtsrb"])
    p.add_argument(
        "--runs", type=int, nargs="+", default=[3], help="runs of each recipe, or one count per recipe"
    )
    p.add_argument("--seed", type=int, help="the seed of every run (default: each recipe's own)")
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "time-to-accuracy")
    p.add_argument("--plot", type=Path, help="write the curves to this PNG")
    args = p.parse_args()
    setup_logging()
    counts = args.runs * len(args.recipes) if len(args.runs) == 1 else args.runs
    if len(counts) != len(args.recipes):
        p.error(f"--runs: give one count, or one per recipe ({len(args.recipes)})")
    runs: dict[str, list[list[dict]]] = {r: [] for r in args.recipes}
    for i in range(max(counts)):
        for recipe, count in zip(args.recipes, counts, strict=True):
            if i >= count:  # alternating: the machine's slow stretches fall on every recipe
                continue
            seed = args.seed if args.seed is not None else get_recipe(recipe).config.train.seed
            out = args.output_dir / recipe / f"seed-{seed}-run-{i}"
            runs[recipe].append(history(recipe, args.dataset, args.seed, out))
    print("| recipe | runs | training time, median (range) | final validation accuracy, median (range) |")
    print("|---|---|---|---|")
    for recipe, histories in runs.items():
        times = [sum(h["seconds"] for h in run) for run in histories]
        final = [run[-1]["val_accuracy"] for run in histories]
        time_range = f"{min(times):.0f}-{max(times):.0f}"
        print(
            f"| `{recipe}` | {len(histories)} | {statistics.median(times):.0f} s ({time_range}) "
            f"| {statistics.median(final):.4f} ({min(final):.4f}-{max(final):.4f}) |"
        )
    for recipe, histories in runs.items():
        print(f"\n{recipe}: epoch, seconds, validation accuracy (medians over {len(histories)} runs)")
        for epoch, (seconds, accuracy) in enumerate(curve(histories), 1):
            print(f"  {epoch:2d}  {seconds:7.0f}  {accuracy:.4f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for recipe, histories in runs.items():
            xs, ys = zip(*curve(histories), strict=True)
            ax.plot([x / 60 for x in xs], ys, marker="o", label=recipe)
        ax.axhline(0.994, color="grey", linestyle=":", label="99.4%")
        ax.set(xlabel="training minutes (2 CPU cores)", ylabel="validation accuracy", ylim=(0.94, 1.0))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
