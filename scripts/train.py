"""Train an image classifier from a recipe.

accelerate launch scripts/train.py --dataset synthetic
python scripts/train.py --recipe lenet-gtsrb --dataset ../shared/data/gtsrb-train-32 --output-dir runs/gtsrb
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tl_hub.cli import (
    TRAIN_FLAGS,
    add_hub_write_arguments,
    parser,
    run_config_from_args,
    run_main,
    setup_logging,
)
from tl_hub.errors import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("Train an image classifier from a tl_hub recipe.", TRAIN_FLAGS)
    p.add_argument(
        "--push-to-hub", action="store_true", help="push the release to the Hub when training ends"
    )
    p.add_argument("--hub-model-id", help="the Hub model repo to push to, USER/NAME (created if missing)")
    add_hub_write_arguments(p)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.push_to_hub and not args.hub_model_id:
        raise ConfigError("--push-to-hub needs --hub-model-id USER/NAME")
    run = run_config_from_args(args)
    setup_logging()
    from tl_hub.accelerator import make_accelerator
    from tl_hub.release.publish import PushTarget, check_can_push, push_to_hub
    from tl_hub.training.tracking import LOGS_DIR, resolve_trackers
    from tl_hub.training.trainer import train

    push = PushTarget(args.hub_model_id, args.private, args.hub_token) if args.push_to_hub else None
    if push is not None:
        check_can_push(push)  # before training, not after: fail in seconds, not hours
    report_to = resolve_trackers(args.report_to)  # a tracker that is not installed: said now, not later
    output_dir = args.output_dir or f"runs/{run.recipe}"
    accelerator = make_accelerator(report_to, Path(output_dir) / LOGS_DIR)
    train(run, output_dir, accelerator, resume=args.resume)
    accelerator.end_training()
    if push is not None and accelerator.is_main_process:
        push_to_hub(output_dir, push)  # after the last barrier: a failure strands no process


if __name__ == "__main__":
    run_main(main)
