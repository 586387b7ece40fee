"""Compare transfer-learning arms over training-set sizes and seeds, and write a report.

accelerate launch scripts/compare.py --recipe lenet-gtsrb --dataset ../shared/data/gtsrb-train-32 \
    --source-dataset synthetic --arms scratch,finetune-all,source-only --sizes 10,50,200,all --seeds 0,1,2 \
    --output-dir runs/compare-gtsrb
"""

from __future__ import annotations

import argparse

from tl_hub.cli import (
    ArgumentParser,
    comma_separated,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
    run_config_from_args,
    run_main,
    setup_logging,
    size_or_all,
)
from tl_hub.experiments.compare import ARMS, SOURCE_ONLY, TRANSFER_ARMS
from tl_hub.recipes import DEFAULT_RECIPE, RECIPES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(
        description="Train several transfer-learning arms of a recipe over training-set sizes and seeds, "
        "with one data split and one budget, and write a report (report.md, results.json, plots)."
    )
    p.add_argument(
        "--recipe", default=DEFAULT_RECIPE, help=f"one of: {', '.join(RECIPES)} (default: %(default)s)"
    )
    p.add_argument("--dataset", help="the target: Hub dataset id, local directory, or 'synthetic'")
    p.add_argument(
        "--arms",
        type=comma_separated(one_of(ARMS, "arm")),
        help=f"comma-separated, from: {', '.join(ARMS)} (default: scratch and the transfer arms, plus "
        "source-only when there is a source model)",
    )
    p.add_argument(
        "--sizes",
        type=comma_separated(size_or_all),
        default=(10, 50, 200, "all"),
        help="training images per class, comma-separated, or 'all' (default: 10,50,200,all)",
    )
    p.add_argument(
        "--seeds", type=comma_separated(non_negative_int), default=(0, 1, 2), help="default: 0,1,2"
    )
    p.add_argument("--output-dir", help="the report directory (default: runs/compare-RECIPE)")
    p.add_argument(
        "--source-dataset",
        help="train a source model on this dataset (one per seed) and start the transfer arms from it",
    )
    p.add_argument("--source-epochs", type=positive_int, help="the source model's epochs (default: --epochs)")
    p.add_argument("--init-from", help="or start the transfer arms from this tl_hub release or Hub repo")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="global batch size, split across processes")
    p.add_argument("--lr", type=positive_float, help="learning rate")
    p.add_argument("--val-size", type=size_or_all, help="class-balanced validation sample size, or 'all'")
    p.add_argument("--image-column", help="image column (default: found automatically)")
    p.add_argument("--label-column", help="label column (default: found automatically)")
    p.add_argument("--synthetic-per-class", type=positive_int, help="training images per class for synthetic")
    p.add_argument(
        "--pretrained-file",
        help="local weights of the conv base (.safetensors, or a torchvision/timm state dict)",
    )
    p.add_argument("--no-pretrained", action="store_true", help="start the conv base from random weights")
    p.add_argument("--cache-views", type=non_negative_int, help="feature-extract: augmented views per image")
    p.add_argument(
        "--no-feature-cache", action="store_true", help="feature-extract: run the base every epoch"
    )
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    run = run_config_from_args(args, ignore=("init_from",))
    setup_logging()
    from tl_hub.experiments.compare import Comparison, run_comparison

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
    run_comparison(comparison, args.output_dir or f"runs/compare-{args.recipe}")


if __name__ == "__main__":
    run_main(main, on_interrupt="rerun the same command: finished arms are skipped, the last one resumes")
