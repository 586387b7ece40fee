"""Shared entry-point behaviour: logging set-up and one-line user errors with exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from tl_hub.errors import TLHubError

T = TypeVar("T")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: ...` on stderr, exit code 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def add_hub_write_arguments(parser: argparse.ArgumentParser) -> None:
    """--private and --hub-token, shared by every script that pushes to the Hub."""
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--hub-token", help="token with write access (default: HF_TOKEN or `hf auth login`)")


def setup_logging() -> None:
    """INFO logs to stdout on the main process only (every process logs warnings)."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    for noisy in ("httpx", "httpcore", "urllib3", "filelock", "fsspec", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def size_or_all(text: str) -> int | str:
    """A positive integer, or 'all'."""
    if text == "all":
        return text
    try:
        int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive integer nor 'all'") from None
    return positive_int(text)


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def comma_separated(item: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """An argparse type: 'A,B,C' parsed item by item with `item`, without repeats."""

    def parse(text: str) -> tuple[T, ...]:
        values = tuple(item(part.strip()) for part in text.split(","))
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a value")
        return values

    return parse


def one_of(choices: tuple[str, ...], kind: str) -> Callable[[str], str]:
    """An argparse type that accepts one of `choices` and lists them otherwise."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"unknown {kind} {text!r}: choose from {', '.join(choices)}")
        return text

    return parse


def run_main(
    main: Callable[[], object], on_interrupt: str = "rerun the same command with --resume to continue"
) -> None:
    """Run `main`; a user error becomes `error: ...` on stderr and exit code 2, without a traceback."""
    try:
        main()
    except TLHubError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {on_interrupt}", file=sys.stderr)
        sys.exit(130)
