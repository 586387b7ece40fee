"""How well a model trained only on tl_hub's rendered signs reads real ones: train on `--dataset synthetic`
with tl_hub's own training script, then score the release on every image of a real GTSRB split.

python benchmarks/rendered_to_real.py --real ../shared/data/gtsrb-train-32 [--recipe cnn-synthetic]
    [--epochs N] [--per-class N] [--seed N] [--threads N] [--retrain]

The run goes to OUTPUT_DIR (default runs/rendered-to-real-RECIPE, with -seedN when --seed is given); a
finished one is scored again, not retrained, so the script can be stopped and started again. After a change
to the renderer or the recipe, --retrain moves the old run aside (to OUTPUT_DIR.before-TIMESTAMP) and trains
afresh. Prints the two commands it ran, their wall times, the accuracy on the real images and the worst
classes with what they were taken for.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], threads: int | None) -> float:
    """Run `command` from the repository root; returns its wall time in seconds."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$ " + shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def worst_classes(metrics: dict, names: list[str], count: int) -> list[tuple[str, float, str]]:
    """(class, accuracy, the class it was most often taken for) for the `count` least accurate classes.

    `names` are the release's label names, the order of the confusion matrix's rows and columns.
    """
    rows = []
    for name, accuracy in sorted(metrics["per_class_accuracy"].items(), key=lambda item: item[1])[:count]:
        i = names.index(name)
        row = list(metrics["confusion_matrix"][i])
        row[i] = -1
        rows.append((name, accuracy, names[max(range(len(row)), key=row.__getitem__)]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", required=True, help="a real GTSRB dataset (Hub id or local directory)")
    p.add_argument("--split", default="train", help="the real split to score (default: %(default)s)")
    p.add_argument("--recipe", default="cnn-synthetic", help="default: %(default)s")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--per-class", type=int, default=None, help="rendered training images per class")
    p.add_argument("--seed", type=int, default=None, help="train.py's --seed (default: the recipe's, 42)")
    p.add_argument("--threads", type=int, default=None, help="OMP/MKL threads of both runs")
    p.add_argument("--worst", type=int, default=10, help="how many of the worst classes to list")
    p.add_argument(
        "--output-dir", type=Path, default=None, help="default: runs/rendered-to-real-RECIPE[-seedN]"
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="move a run already in OUTPUT_DIR aside (OUTPUT_DIR.before-TIMESTAMP) and train again",
    )
    args = p.parse_args()
    seeded = "" if args.seed is None else f"-seed{args.seed}"  # a finished run of another seed is not reused
    out = (args.output_dir or Path("runs") / f"rendered-to-real-{args.recipe}{seeded}").resolve()
    train = [sys.executable, "scripts/train.py", "--recipe", args.recipe, "--dataset", "synthetic"]
    if args.epochs is not None:
        train += ["--epochs", str(args.epochs)]
    if args.per_class is not None:
        train += ["--synthetic-per-class", str(args.per_class)]
    if args.seed is not None:
        train += ["--seed", str(args.seed)]
    train += ["--output-dir", str(out)]
    train_seconds = None
    if args.retrain and out.exists():
        aside = out.with_name(f"{out.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        print(f"--retrain: moved the run before to {aside}", flush=True)
    if not (out / "model" / "metrics.json").exists():
        train_seconds = run(train, args.threads)
    scores = out / "real-scores.json"
    score = [sys.executable, "scripts/evaluate.py", str(out / "model"), "--dataset", args.real]
    score += ["--split", args.split, "--output", str(scores)]
    score_seconds = run(score, args.threads)

    metrics = json.loads(scores.read_text())
    rendered = json.loads((out / "model" / "metrics.json").read_text())["test"]["accuracy"]
    print(f"\nrecipe {args.recipe}, trained on rendered signs only: {out}")
    if train_seconds is not None:
        print(f"training (render, train, score the rendered test split, release): {train_seconds:.1f} s")
    print(f"scoring {metrics['num_samples']} real images: {score_seconds:.1f} s")
    print(f"rendered test accuracy {rendered:.4f}")
    print(f"real accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}\n")
    print("| worst classes on real images | accuracy | most often taken for |")
    print("|---|---|---|")
    names = json.loads((out / "model" / "config.json").read_text())["label_names"]
    for name, accuracy, taken_for in worst_classes(metrics, names, args.worst):
        print(f"| {name} | {accuracy:.3f} | {taken_for} |")


if __name__ == "__main__":
    main()
