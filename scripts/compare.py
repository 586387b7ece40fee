"""Compare transfer-learning arms over training-set sizes and seeds, and write a report.

accelerate launch scripts/compare.py --recipe lenet-gtsrb --dataset ../shared/data/gtsrb-train-32 \
    --source-dataset synthetic --arms scratch,finetune-all,source-only --sizes 10,50,200,all --seeds 0,1,2 \
    --output-dir runs/compare-gtsrb
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tl_hub.cli import (
    TRAIN_FLAGS,
    comma_separated,
    one_of,
    parser,
    run_config_from_args,
    run_main,
    setup_logging,
)
from tl_hub.config import MAX_SAMPLES
from tl_hub.experiments.results import ARMS, SOURCE_ONLY, TRANSFER_ARMS
from tl_hub.flags import ALL, integer

# What every arm shares comes from the training flags; what varies between arms (the seed, the strategy,
# the training-set size) has flags of its own here.
VARIED = ("--seed", "--strategy", "--train-size", "--max-train-samples", "--train-sample", "--resume")


def size(text: str) -> int | str:
    """Training images per class (a positive integer), or 'all'."""
    if text == ALL:
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive integer nor 'all'") from None
    if not 0 < value <= MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer (at most {MAX_SAMPLES:,})")
    return value


def seed(text: str) -> int:
    """A seed; its upper bound is the run's to check (tl_hub.config.TrainConfig)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Train several transfer-learning arms of a recipe over training-set sizes and seeds, with one data "
        "split and one budget, and write a report (report.md, results.json, plots).",
        [name for name in TRAIN_FLAGS if name not in VARIED],
    )
    p.add_argument(
        "--arms",
        type=comma_separated(one_of(ARMS, "arm")),
        help=f"comma-separated, from: {', '.join(ARMS)} (default: scratch and the transfer arms, plus "
        "source-only when there is a source model)",
    )
    p.add_argument(
        "--sizes",
        type=comma_separated(size),
        default=(10, 50, 200, ALL),
        help="training images per class, comma-separated, or 'all' (default: 10,50,200,all)",
    )
    p.add_argument("--seeds", type=comma_separated(seed), default=(0, 1, 2), help="default: 0,1,2")
    p.add_argument(
        "--source-dataset",
        help="train a source model on this dataset (one per seed) and start the transfer arms from it",
    )
    p.add_argument("--source-epochs", type=integer, help="the source model's epochs (default: --epochs)")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    run = run_config_from_args(args, ignore=("--init-from",))
    setup_logging()
    from tl_hub.accelerator import make_accelerator
    from tl_hub.experiments.compare import Comparison, run_comparison
    from tl_hub.training.tracking import LOGS_DIR, resolve_trackers

    has_source = args.source_dataset is not None or args.init_from is not None
    arms = args.arms or ("scratch", *TRANSFER_ARMS, *((SOURCE_ONLY,) if has_source else ()))
    comparison = Comparison(
        base=run,
        arms=arms,
        sizes=args.sizes,
        seeds=args.seeds,
        source_dataset=args.source_dataset,
        source_epochs=args.source_epochs,
        init_from=args.init_from,
    )
    report_to = resolve_trackers(args.report_to)  # a tracker that is not installed: said now, not later
    output_dir = args.output_dir or f"runs/compare-{run.recipe}"
    accelerator = make_accelerator(report_to, Path(output_dir) / LOGS_DIR)
    run_comparison(comparison, output_dir, accelerator)
    accelerator.end_training()


if __name__ == "__main__":
    run_main(main, on_interrupt="rerun the same command: finished arms are skipped, the last one resumes")
