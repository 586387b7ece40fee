"""The one table of training flags: which command-line flag sets which RunConfig field, and how its text is
read. The scripts build their parsers from it (tl_hub.cli); the values are checked by the dataclasses of
tl_hub.config, so a flag and the Python API accept and refuse the same values."""

from __future__ import annotations

from argparse import ArgumentTypeError
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_hub.config import (
    IMAGE_CACHES,
    INTERPOLATIONS,
    MAX_BATCH_SIZE,
    MAX_CACHE_VIEWS,
    MAX_EPOCHS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_SYNTHETIC_PER_CLASS,
    STRATEGIES,
    TRACKERS,
)


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its name, the RunConfig field it sets, and how its text is read.

    The value is only converted here (`parse`); whether it is valid is the dataclass's call, so a flag and
    the Python API accept and refuse the same values, with the same words.
    """

    name: str  # "--lr"
    field: str | None  # "train.lr"; None for a flag the script handles itself
    help: str
    parse: Callable[[str], Any] | None = str  # None: a switch without a value
    const: Any = True  # the value a switch sets
    also: tuple[tuple[str, Any], ...] = ()  # further (field, value) pairs the flag sets
    deprecated: str | None = None  # what to write instead: the flag still works, with a warning

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")


ALL = "all"  # --train-size / --val-size / --max-train-samples all: every image


def integer(text: str) -> int:
    """A flag's integer (its range is the dataclass's to check)."""
    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not an integer") from None


def number(text: str) -> float:
    """A flag's number (its range is the dataclass's to check)."""
    try:
        return float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number") from None


def numbers(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, e.g. a per-channel mean."""
    return tuple(number(part.strip()) for part in text.split(","))


def scales(text: str) -> tuple[float, ...]:
    """--tta-scales: comma-separated numbers, or 'none' for no test-time views."""
    return () if text.strip().lower() == "none" else numbers(text)


def path(text: str) -> str:
    """A flag's file-system path: any text but the empty string (which would mean the working directory)."""
    if not text.strip():
        raise ArgumentTypeError(f"{text!r} is not a path: give a directory")
    return text


def weights_file(text: str) -> str:
    """--pretrained-file: a weights file, or a directory holding model.safetensors (timm's and tl_hub's)."""
    if not text.strip():
        raise ArgumentTypeError(f"{text!r} is not a path: give a weights file")
    directory = Path(text).expanduser()
    if directory.is_dir():
        if not (directory / "model.safetensors").is_file():
            raise ArgumentTypeError(
                f"{text!r} is a directory without model.safetensors: give the weights file itself"
            )
        return str(directory / "model.safetensors")
    return text


def size_or_all(text: str) -> int | str:
    """An integer (checked by the dataclass), or "all"."""
    if text == ALL:
        return text
    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is neither an integer nor 'all'") from None


def report_to(text: str) -> tuple[str, ...]:
    """--report-to: comma-separated tracker names, "all" (every installed one: resolved by
    tl_hub.training.tracking) or "none" (the empty tuple)."""
    names = tuple(part.strip() for part in text.split(","))
    choices = (*TRACKERS, ALL, "none")
    for name in names:
        if name not in choices:
            raise ArgumentTypeError(f"unknown tracker {name!r}: choose from {', '.join(choices)}")
    if len(set(names)) != len(names):
        raise ArgumentTypeError(f"{text!r} repeats a tracker")
    if len(names) > 1 and ({ALL, "none"} & set(names)):
        raise ArgumentTypeError(f"{text!r}: 'all' and 'none' stand alone")
    return () if names == ("none",) else names


FLAGS: tuple[Flag, ...] = (
    Flag(
        "--recipe",
        None,
        "a named setup from tl_hub/recipes.py (default: lenet-gtsrb; with --model, timm-finetune)",
    ),
    Flag(
        "--dataset",
        "data.dataset",
        "a Hub dataset id, a local directory, or 'synthetic' (default: the recipe's)",
    ),
    Flag("--output-dir", None, "where the run (train.py) or the comparison (compare.py) is written", path),
    Flag(
        "--model",
        None,  # sets model.architecture, model.pretrained and the preprocessing: tl_hub.cli resolves it
        "any timm model: a name (resnet50, efficientnet_lite0, convnext_tiny, vit_small_patch16_224, ...), "
        "hf-hub:ORG/NAME or local-dir:PATH; its pretrained weights and their preprocessing come with it",
    ),
    Flag(
        "--augment",
        None,
        "training augmentation: photo (crops, flips), timm (timm's: wider crops, flips, colour jitter), "
        "sign (rotation, blur; no flips), none",
    ),
    Flag(
        "--input-size",
        "preprocess.input_size",
        "the model's input side in pixels, 8 to 4096 (default: the model's)",
        integer,
    ),
    Flag("--mean", "preprocess.mean", "per-channel normalization mean, comma-separated", numbers),
    Flag("--std", "preprocess.std", "per-channel normalization std, comma-separated", numbers),
    Flag("--crop-pct", "preprocess.crop_pct", "the center crop's share of the resized image", number),
    Flag(
        "--tta-scales",
        "preprocess.tta_scales",
        "test-time views, comma-separated: predictions average the image and its field of view scaled by "
        "each (0.9: the central 90%%; 1.1: 10%% more around it), or 'none'",
        scales,
    ),
    Flag("--interpolation", "preprocess.interpolation", f"resize interpolation: {', '.join(INTERPOLATIONS)}"),
    Flag("--epochs", "train.epochs", f"passes over the training images (1 to {MAX_EPOCHS:,})", integer),
    Flag(
        "--batch-size",
        "train.batch_size",
        f"the global batch, split across processes (1 to {MAX_BATCH_SIZE:,})",
        integer,
    ),
    Flag("--lr", "train.lr", "the learning rate", number),
    Flag(
        "--ema-decay",
        "train.ema_decay",
        "validate and release an exponential moving average of the weights with this decay per step "
        "(warmed up; 0: off)",
        number,
    ),
    Flag(
        "--seed",
        "train.seed",
        f"seeds the split, the sample, the shuffling and the augmentation (0 to {MAX_SEED})",
        integer,
    ),
    Flag(
        "--train-size",
        "data.train_size",
        "train on a seeded sample of N images (--train-sample says how it is drawn), or 'all' (all of them, "
        f"with a warning, when the split has fewer; at most {MAX_SAMPLES:,})",
        size_or_all,
    ),
    Flag(
        "--train-sample",
        "data.train_sample",
        "how the --train-size sample is drawn: balanced (an equal share per class, as far as the data "
        "allows) or stratified (each class keeps its share of the split)",
    ),
    Flag(
        "--max-train-samples",
        "data.train_size",
        "deprecated: --train-size N --train-sample stratified",
        size_or_all,
        also=(("data.train_sample", "stratified"),),
        deprecated="--train-size N --train-sample stratified",
    ),
    Flag(
        "--val-size",
        "data.val_size",
        f"a seeded, class-balanced validation sample of N images, or 'all' (at most {MAX_SAMPLES:,})",
        size_or_all,
    ),
    Flag(
        "--dataset-name",
        "data.dataset_name",
        "the dataset's name in the model card (default: the Hub id, or a local directory's name)",
    ),
    Flag(
        "--image-cache",
        "data.image_cache",
        f"where decoded images live: {', '.join(IMAGE_CACHES)} (auto: disk for photos or beyond 2 GiB)",
    ),
    Flag("--streaming", "data.streaming", "stream the train split (datasets beyond the disk)", None),
    Flag("--image-column", "data.image_column", "the image column (default: found automatically)"),
    Flag("--label-column", "data.label_column", "the label column (default: found automatically)"),
    Flag(
        "--synthetic-per-class",
        "data.synthetic_per_class",
        f"training images per class for --dataset synthetic (1 to {MAX_SYNTHETIC_PER_CLASS:,})",
        integer,
    ),
    Flag(
        "--strategy",
        "transfer.strategy",
        f"which layers train: {', '.join(STRATEGIES)} (default: the recipe's)",
    ),
    Flag(
        "--head-epochs",
        "transfer.head_epochs",
        "finetune-top: epochs that train the head alone before the base's last stage joins",
        integer,
    ),
    Flag(
        "--top-lr-scale",
        "transfer.top_lr_scale",
        "finetune-top: the last stage's learning rate as a fraction of the head's, in (0, 1]",
        number,
    ),
    Flag(
        "--base-lr-scale",
        "transfer.base_lr_scale",
        "finetune-all: the pretrained layers' learning rate as a fraction of the head's, in (0, 1]",
        number,
    ),
    Flag("--init-from", "transfer.init_from", "start from a tl_hub release directory or Hub repo"),
    Flag(
        "--pretrained-file",
        "model.pretrained",
        "local weights of the convolutional base (.safetensors, or a torchvision/timm state dict), or a "
        "directory holding model.safetensors",
        weights_file,
    ),
    Flag(
        "--no-pretrained",
        "model.pretrained",
        "start the convolutional base from random weights",
        None,
        const=None,
    ),
    Flag(
        "--pooled-head",
        "model.pooled_head",
        "VGG16: a pooled head (global average pooling -> Dense) instead of the study's Flatten -> Dense 256",
        None,
    ),
    Flag("--no-pooled-head", "model.pooled_head", "VGG16: the study's Flatten head", None, const=False),
    Flag(
        "--cache-views",
        "transfer.cache_views",
        f"feature-extract: augmented views per image in the feature cache (0 to {MAX_CACHE_VIEWS}); "
        "finetune-top on VGG16 or LeNet-5: views of the frozen layers below the last block, one per epoch",
        integer,
    ),
    Flag(
        "--no-feature-cache",
        "transfer.feature_cache",
        "feature-extract: run the base every epoch instead of caching",
        None,
        const=False,
    ),
    Flag("--compile", "transfer.compile", "torch.compile the model", None),
    Flag(
        "--channels-last",
        "train.channels_last",
        "train convolutions on channels-last batches (oneDNN's faster layout on a CPU)",
        None,
    ),
    Flag("--resume", None, "continue the run in --output-dir from its last checkpoint", None),
    Flag(
        "--report-to",
        None,  # where the curves go, not what the run is: the scripts hand it to the Accelerator
        f"experiment trackers, comma-separated: {', '.join(TRACKERS)}, all (every one installed) or none "
        "(default); their files go under OUTPUT_DIR/logs/",
        report_to,
    ),
)
FLAG_BY_NAME = {flag.name: flag for flag in FLAGS}
