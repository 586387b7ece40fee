"""Deploy the Gradio Space (spaces/ with the tl_hub package) to a Hub Space repo.

python scripts/deploy_space.py USER/tl-hub-demo \
    --signs-model USER/lenet-gtsrb --pets-model USER/vgg16-catsdogs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tl_hub.cli import (
    ArgumentParser,
    add_hub_write_arguments,
    add_space_model_arguments,
    run_main,
    setup_logging,
)

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description="Deploy tl_hub's Gradio Space to the Hub.")
    p.add_argument("space_id", metavar="SPACE_ID", help="the Space repo, USER/NAME (created if missing)")
    add_space_model_arguments(p, deploying=True)
    p.add_argument("--space-dir", type=Path, default=SPACE_DIR, help="the app folder (default: %(default)s)")
    add_hub_write_arguments(p)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    setup_logging()
    from tl_hub.release.space import deploy_space

    url = deploy_space(
        args.space_id, args.space_dir, args.signs_model, args.pets_model, args.private, args.hub_token
    )
    print(f"Space deployed: {url}")


if __name__ == "__main__":
    run_main(main)
