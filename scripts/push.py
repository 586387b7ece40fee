"""Push a release directory (or a run directory holding model/) to the Hugging Face Hub.

python scripts/push.py runs/lenet-gtsrb USER/lenet-gtsrb [--private] [--hub-token TOKEN]
"""

from __future__ import annotations

import argparse

from tl_hub.cli import ArgumentParser, add_hub_write_arguments, run_main, setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description="Push a tl_hub release directory to a Hugging Face Hub model repo.")
    p.add_argument("path", help="run directory (OUTPUT_DIR) or release directory (OUTPUT_DIR/model)")
    p.add_argument("repo_id", help="the model repo, USER/NAME or ORG/NAME (created if missing)")
    add_hub_write_arguments(p)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    setup_logging()
    from tl_hub.release.publish import PushTarget, push_to_hub

    url = push_to_hub(args.path, PushTarget(args.repo_id, private=args.private, token=args.hub_token))
    print(url)


if __name__ == "__main__":
    run_main(main)
