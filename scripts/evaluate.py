"""Evaluate a saved model on any split of any dataset and print its metrics.

python scripts/evaluate.py runs/lenet-gtsrb/model --dataset synthetic --split test --output metrics.json
"""

from __future__ import annotations

import argparse

from tl_hub.cli import ArgumentParser, positive_int, run_main, setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description="Evaluate a tl_hub release directory (or Hub repo) on a dataset split.")
    p.add_argument("model", help="release directory (OUTPUT_DIR/model) or Hub repo id")
    p.add_argument("--dataset", required=True, help="Hub dataset id, local directory, or 'synthetic'")
    p.add_argument("--split", default="test", help="split name (default: %(default)s)")
    p.add_argument("--image-column", help="image column (default: found automatically)")
    p.add_argument("--label-column", help="label column (default: found automatically)")
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.add_argument("--output", help="also write the metrics to this JSON file")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    setup_logging()
    from tl_hub.inference.evaluate import evaluate_release

    evaluate_release(
        args.model,
        args.dataset,
        args.split,
        image_column=args.image_column,
        label_column=args.label_column,
        batch_size=args.batch_size,
        output=args.output,
    )


if __name__ == "__main__":
    run_main(main)
