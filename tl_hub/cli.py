"""Shared entry-point behaviour: logging set-up and one-line user errors with exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from tl_hub.errors import TLHubError

if TYPE_CHECKING:
    from tl_hub.config import RunConfig

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


def run_config_from_args(args: argparse.Namespace, ignore: tuple[str, ...] = ()) -> RunConfig:
    """The recipe `args.recipe` with the training flags a script defines applied (absent flags: the recipe's).

    Shared by train.py and compare.py, which define different subsets of these flags; `ignore` names flags
    the caller uses otherwise (compare.py's --init-from starts the transfer arms, not every run).
    """
    import dataclasses

    from tl_hub.recipes import get_recipe
    from tl_hub.training.trainer import apply_overrides

    def flag(name: str) -> object:
        return None if name in ignore else getattr(args, name, None)

    if flag("no_pretrained") and flag("pretrained_file"):
        raise TLHubError("--no-pretrained and --pretrained-file contradict each other: pass one")
    if flag("cache_views") is not None and flag("cache_views") < 0:
        raise TLHubError(f"--cache-views {flag('cache_views')} must be 0 or more")
    sizes = {"train_size": flag("train_size"), "val_size": flag("val_size")}
    run = apply_overrides(
        get_recipe(args.recipe).config,
        data__dataset=flag("dataset"),
        data__max_train_samples=flag("max_train_samples"),
        data__image_column=flag("image_column"),
        data__label_column=flag("label_column"),
        data__synthetic_per_class=flag("synthetic_per_class"),
        train__epochs=flag("epochs"),
        train__batch_size=flag("batch_size"),
        train__lr=flag("lr"),
        train__seed=flag("seed"),
        transfer__strategy=flag("strategy"),
        transfer__init_from=flag("init_from"),
        transfer__cache_views=flag("cache_views"),
        transfer__feature_cache=False if flag("no_feature_cache") else None,
        transfer__compile=True if flag("compile") else None,
        model__pretrained=flag("pretrained_file"),
    )
    data = {k: None if v == "all" else v for k, v in sizes.items() if v is not None}  # "all": no sample
    run = dataclasses.replace(run, data=dataclasses.replace(run.data, **data))
    if flag("no_pretrained"):
        run = dataclasses.replace(run, model=dataclasses.replace(run.model, pretrained=None))
    return run
