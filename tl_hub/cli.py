"""What the scripts share: parsers built from the flag table, logging set-up, and one-line user errors.

A script parses its flags with `parser(...)`, turns them into a RunConfig with `run_config_from_args`, and
runs its body under `run_main`: a user error is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from tl_hub.errors import ConfigError, TLHubError
from tl_hub.flags import ALL, FLAG_BY_NAME, FLAGS

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


def parser(description: str, flags: Iterable[str], required: Iterable[str] = ()) -> ArgumentParser:
    """A parser holding the named flags of the table (`tl_hub.flags.FLAGS`), in the table's order;
    `required` ones must be given (their help then names no default); with --recipe, its help ends with
    the recipes and what each is."""
    flags = tuple(flags)
    p = ArgumentParser(
        description=description,
        allow_abbrev=False,  # no --seed for --seeds: say so instead
        epilog=recipes_help() if "--recipe" in flags else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wanted, required = set(flags), set(required)
    unknown = (wanted | required) - set(FLAG_BY_NAME)
    assert not unknown, f"flags not in the table: {unknown}"
    for flag in FLAGS:
        if flag.name not in wanted | required:
            continue
        if flag.parse is None:
            p.add_argument(flag.name, action="store_true", help=flag.help)
        elif flag.name in required:
            shown = re.sub(r" \(default: [^)]*\)", "", flag.help)
            p.add_argument(flag.name, type=flag.parse, help=shown, metavar=flag.dest.upper(), required=True)
        else:
            p.add_argument(flag.name, type=flag.parse, help=flag.help, metavar=flag.dest.upper())
    return p


def recipes_help() -> str:
    """The recipes, one line each: what --help lists."""
    import textwrap

    from tl_hub.recipes import RECIPES

    width = max(map(len, RECIPES))
    lines = ["recipes (--recipe NAME; tl_hub/recipes.py):"]
    for recipe in RECIPES.values():
        text = textwrap.fill(
            recipe.description,
            110,
            initial_indent=f"  {recipe.name:<{width}}  ",
            subsequent_indent=" " * (width + 4),
        )
        lines.append(text)
    return "\n".join(lines)


def add_hub_write_arguments(parser: argparse.ArgumentParser) -> None:
    """--private and --hub-token, shared by every script that pushes to the Hub."""
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--hub-token", help="token with write access (default: HF_TOKEN or `hf auth login`)")


def add_space_model_arguments(parser: argparse.ArgumentParser, deploying: bool = False) -> None:
    """--signs-model and --pets-model (`tl_hub.release.space.SPACE_MODELS`), declared here once for the app
    (a Hub repo id or a release directory, defaulting to the tab's Space variable) and for deploying
    (`deploying`: a Hub repo id, required, which becomes that variable)."""
    from tl_hub.release.space import SPACE_MODELS

    for m in SPACE_MODELS:
        if deploying:
            parser.add_argument(
                m.flag, required=True, metavar="USER/NAME", help=f"Hub repo id of {m.what} (sets ${m.env})"
            )
        else:
            parser.add_argument(
                m.flag,
                default=os.environ.get(m.env),
                metavar="REPO_OR_DIR",
                help=f"Hub repo id or release directory of {m.what} (default: ${m.env}, else the most "
                "accurate fitting runs/*/model)",
            )


def setup_logging() -> None:
    """INFO logs to stdout on the main process only (every process logs warnings)."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    # httpx2: huggingface_hub's HTTP client, which logs every request of a push at INFO
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "filelock", "fsspec", "accelerate"):
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
    for flag in given:
        if flag.deprecated is not None:
            logging.getLogger(__name__).warning(
                "%s is deprecated and goes in the next release: write %s", flag.name, flag.deprecated
            )
    if {"--train-size", "--max-train-samples"} <= names:
        raise ConfigError("--train-size and --max-train-samples say the same thing: pass --train-size")
    if {"--no-pretrained", "--pretrained-file"} <= names:
        raise ConfigError("--no-pretrained and --pretrained-file contradict each other: pass one")
    model = getattr(args, "model", None) if "--model" not in ignore else None
    recipe = get_recipe(getattr(args, "recipe", None) or (recipe_for(model) if model else DEFAULT_RECIPE))
    changes = model_changes(recipe.config, model) if model else {}
    if getattr(args, "augment", None):
        changes |= augment_changes(args.augment)
    changes |= {
        flag.field: flag.const if flag.parse is None else (None if value == ALL else value)
        for flag, value in given.items()
    }
    for flag in given:
        changes |= dict(flag.also)
    try:
        run = recipe.config.replace(changes)
    except ConfigError as e:
        flag = next((f for f in given if e.field is not None and f.field.endswith("." + e.field)), None)
        if flag is None:
            raise
        raise ConfigError(
            f"{flag.name} {given[flag]}: expected {e.expected}", e.field, e.value, e.expected
        ) from None
    if "--pretrained-file" in names and not run.transfer.spec.pretrained:
        raise ConfigError(
            f"--pretrained-file {args.pretrained_file} contradicts strategy scratch (random weights, the "
            f"{'given' if '--strategy' in names else 'recipe'}'s): pass --strategy feature-extract, "
            "finetune-top or finetune-all, or leave out --pretrained-file"
        )
    return run


def recipe_for(model: str) -> str:
    """The recipe `--model` implies without --recipe: the one of a tl_hub network, else timm-finetune."""
    from tl_hub.recipes import RECIPES

    return next((r.name for r in RECIPES.values() if r.config.model.architecture == model), "timm-finetune")


def augment_changes(name: str) -> dict[str, object]:
    """`--augment name`: every augmentation field from the named preset."""
    import dataclasses

    from tl_hub.recipes import AUGMENTATIONS

    if name not in AUGMENTATIONS:
        raise ConfigError(f"--augment {name}: expected one of {', '.join(AUGMENTATIONS)}")
    return {f"aug.{k}": v for k, v in dataclasses.asdict(AUGMENTATIONS[name]).items()}


def model_changes(run: RunConfig, name: str) -> dict[str, object]:
    """What `--model name` sets: the architecture, its pretrained weights, and the preprocessing they expect.

    The study's recipes keep their own network: another model for them is an error, as is a tl_hub network
    for a recipe of timm models.
    """
    from tl_hub.models import ARCHITECTURES
    from tl_hub.models.sources import resolve_model

    source = resolve_model(name)
    ours = run.model.architecture
    if source.architecture != ours and (ours in ARCHITECTURES or source.architecture in ARCHITECTURES):
        raise ConfigError(
            f"--model {name}: recipe {run.recipe} trains {ours}, not {source.architecture}: "
            f"use --recipe {recipe_for(name)}"
        )
    if source.preprocess is None:  # the recipe's own network, as it is
        return {}
    p = source.preprocess
    return {
        "model.architecture": source.architecture,
        "model.pretrained": source.weights,
        "preprocess.input_size": p.input_size,
        "preprocess.mean": p.mean,
        "preprocess.std": p.std,
        "preprocess.interpolation": p.interpolation,
        "preprocess.crop_pct": p.crop_pct,
    }


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
