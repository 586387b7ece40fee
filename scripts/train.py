"""Train an image classifier from a recipe.

accelerate launch scripts/train.py --dataset synthetic
python scripts/train.py --recipe lenet-gtsrb --dataset ../shared/data/gtsrb-train-32 --output-dir runs/gtsrb
"""

from __future__ import annotations

import argparse

from tl_hub.cli import (
    ArgumentParser,
    add_hub_write_arguments,
    positive_float,
    positive_int,
    run_config_from_args,
    run_main,
    setup_logging,
    size_or_all,
)
from tl_hub.config import STRATEGIES
from tl_hub.errors import TLHubError
from tl_hub.recipes import DEFAULT_RECIPE, RECIPES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description="Train an image classifier from a tl_hub recipe.")
    p.add_argument(
        "--recipe", default=DEFAULT_RECIPE, help=f"one of: {', '.join(RECIPES)} (default: %(default)s)"
    )
    p.add_argument(
        "--dataset", help="Hub dataset id, local directory, or 'synthetic' (default: the recipe's)"
    )
    p.add_argument("--output-dir", default=None, help="run directory (default: runs/RECIPE)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="global batch size, split across processes")
    p.add_argument("--lr", type=positive_float, help="learning rate")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--max-train-samples", type=positive_int, help="train on a seeded, class-stratified subset"
    )
    p.add_argument("--image-column", help="image column (default: found automatically)")
    p.add_argument("--label-column", help="label column (default: found automatically)")
    p.add_argument("--synthetic-per-class", type=positive_int, help="training images per class for synthetic")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint"
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="which layers train: scratch, feature-extract (frozen base), finetune-top (last conv block and "
        "head), finetune-all (default: the recipe's)",
    )
    p.add_argument("--init-from", help="start from a tl_hub release directory or Hub repo")
    p.add_argument(
        "--pretrained-file",
        help="local weights of the conv base (.safetensors, or a torchvision/timm state dict)",
    )
    p.add_argument("--no-pretrained", action="store_true", help="start the conv base from random weights")
    p.add_argument("--train-size", type=size_or_all, help="class-balanced training sample size, or 'all'")
    p.add_argument("--val-size", type=size_or_all, help="class-balanced validation sample size, or 'all'")
    p.add_argument("--cache-views", type=int, help="feature-extract: augmented views per image in the cache")
    p.add_argument(
        "--no-feature-cache", action="store_true", help="feature-extract: run the base every epoch"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--push-to-hub", action="store_true", help="push the release to the Hub when training ends"
    )
    p.add_argument("--hub-model-id", help="the Hub model repo to push to, USER/NAME (created if missing)")
    add_hub_write_arguments(p)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.push_to_hub and not args.hub_model_id:
        raise TLHubError("--push-to-hub needs --hub-model-id USER/NAME")
    run = run_config_from_args(args)
    setup_logging()
    from tl_hub.release.publish import PushTarget
    from tl_hub.training.trainer import train

    push = PushTarget(args.hub_model_id, args.private, args.hub_token) if args.push_to_hub else None
    train(run, args.output_dir or f"runs/{args.recipe}", resume=args.resume, push=push)


if __name__ == "__main__":
    run_main(main)
