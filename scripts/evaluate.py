"""Evaluate a saved model on any split of any dataset and print its metrics.

python scripts/evaluate.py runs/lenet-gtsrb/model --dataset synthetic --split test --output metrics.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tl_hub.cli import parser, run_main, setup_logging
from tl_hub.config import MAX_BATCH_SIZE
from tl_hub.errors import ConfigError
from tl_hub.flags import integer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(
        "Evaluate a tl_hub release directory (or Hub repo) on a dataset split.",
        ("--image-column", "--label-column"),
        required=("--dataset",),
    )
    p.add_argument("model", help="release directory (OUTPUT_DIR/model) or Hub repo id")
    p.add_argument("--split", default="test", help="split name (default: %(default)s)")
    p.add_argument(
        "--batch-size",
        type=integer,
        help="images per step, all processes together (default: by input size, 512 at 32px, 64 at 224px)",
    )
    p.add_argument(
        "--label-map",
        help="how the dataset's class names map to the model's when they differ: DATA=MODEL pairs "
        "(c1=cat,c2=dog), a JSON file of them, or 'position' (in order)",
    )
    p.add_argument("--output", type=Path, help="also write the metrics to this JSON file")
    p.add_argument(
        "--update-card",
        action="store_true",
        help="record the result in the local release's facts.json and model card (push.py uploads them)",
    )
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.batch_size is not None and not 0 < args.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"--batch-size {args.batch_size}: expected a positive integer (at most {MAX_BATCH_SIZE:,})"
        )
    if args.output is not None and (args.output.is_dir() or not args.output.parent.is_dir()):
        raise ConfigError(f"--output {str(args.output)!r}: expected a file path in an existing directory")
    if args.update_card and not Path(args.model).expanduser().is_dir():
        raise ConfigError(
            f"--update-card: {args.model!r} is not a local release directory; update a local copy "
            "(OUTPUT_DIR/model), then upload it with scripts/push.py"
        )
    from tl_hub.data.labels import parse_label_map

    label_map = parse_label_map(args.label_map) if args.label_map is not None else None
    setup_logging()
    from tl_hub.accelerator import make_accelerator
    from tl_hub.inference.evaluate import evaluate_release
    from tl_hub.release.files import write_json

    accelerator = make_accelerator()
    metrics = evaluate_release(
        args.model,
        args.dataset,
        accelerator,
        args.split,
        image_column=args.image_column,
        label_column=args.label_column,
        batch_size=args.batch_size,
        label_map=label_map,
    )
    if accelerator.is_main_process:
        print(
            f"{args.dataset} [{args.split}]: accuracy {metrics['accuracy']:.4f}, macro-F1 "
            f"{metrics['macro_f1']:.4f}, top-5 accuracy {metrics['top5_accuracy']:.4f}, loss "
            f"{metrics['loss']:.4f} ({metrics['num_samples']} images)"
        )
        if args.output is not None:
            write_json(args.output, metrics)
        if args.update_card:
            from tl_hub.release.writer import record_result

            record_result(args.model, metrics, args.split, args.dataset)
    accelerator.end_training()


if __name__ == "__main__":
    run_main(main)
