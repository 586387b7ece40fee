"""What the scripts share: parsers built from the flag table, logging set-up, and one-line user errors.

A script parses its flags with `parser(...)`, turns them into a RunConfig with `run_config_from_args`, and
runs its body under `run_main`: a user error is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from tl_hub.config import ALL, FLAG_BY_NAME, FLAGS
from tl_hub.errors import ConfigError, TLHubError

if TYPE_CHECKING:
    from tl_hub.config import RunConfig

T = TypeVar("T")

# Every training flag: what train.py accepts. compare.py leaves out what varies between its arms.
TRAIN_FLAGS = tuple(flag.name for flag in FLAGS)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: ...` on stderr, exit code 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parser(description: str, flags: Iterable[str]) -> ArgumentParser:
    """A parser holding the named flags of the table (`tl_hub.config.FLAGS`), in the table's order."""
    p = ArgumentParser(description=description, allow_abbrev=False)  # no --seed for --seeds: say so instead
    wanted = set(flags)
    unknown = wanted - set(FLAG_BY_NAME)
    assert not unknown, f"flags not in the table: {unknown}"
    for flag in FLAGS:
        if flag.name not in wanted:
            continue
        if flag.parse is None:
            p.add_argument(flag.name, action="store_true", help=flag.help)
        else:
            p.add_argument(flag.name, type=flag.parse, help=flag.help, metavar=flag.dest.upper())
    return p


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


def run_config_from_args(args: argparse.Namespace, ignore: tuple[str, ...] = ()) -> RunConfig:
    """The recipe `args.recipe` with every table flag the script defined and the user gave applied.

    Values are checked by the config's dataclasses; a bad one is reworded with the flag that set it
    (`--lr -1: expected a positive finite number`). `ignore` names flags the caller uses otherwise
    (compare.py's --init-from starts the transfer arms, not every run).
    """
    from tl_hub.recipes import DEFAULT_RECIPE, get_recipe

    given = {}
    for flag in FLAGS:
        value = getattr(args, flag.dest, None)
        # absent: None (an option not given) or False (a switch not given); 0 is a value
        if flag.field is not None and flag.name not in ignore and value is not None and value is not False:
            given[flag] = value
    names = {flag.name for flag in given}
    if {"--no-pretrained", "--pretrained-file"} <= names:
        raise ConfigError("--no-pretrained and --pretrained-file contradict each other: pass one")
    changes = {
        flag.field: flag.const if flag.parse is None else (None if value == ALL else value)
        for flag, value in given.items()
    }
    recipe = get_recipe(getattr(args, "recipe", None) or DEFAULT_RECIPE)
    try:
        return recipe.config.replace(changes)
    except ConfigError as e:
        flag = next((f for f in given if e.field is not None and f.field.endswith("." + e.field)), None)
        if flag is None:
            raise
        raise ConfigError(
            f"{flag.name} {given[flag]}: expected {e.expected}", e.field, e.value, e.expected
        ) from None


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
