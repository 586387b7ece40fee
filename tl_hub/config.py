"""The run configuration: dataclasses validated on construction.

`PreprocessConfig` is the model's data config: it is saved in the release's config.json and every
consumer (training, evaluation, inference, the Space) builds its preprocessing from it.

Every value is checked in one place, the dataclass that holds it (`__post_init__`); `tl_hub.flags.FLAGS`
says which command-line flag sets which field, and the scripts build their parsers from it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tl_hub.errors import ConfigError
from tl_hub.strategies import STRATEGY_NAMES as STRATEGIES
from tl_hub.strategies import Strategy, get_strategy

logger = logging.getLogger(__name__)

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "cosine")
EQUALIZATIONS = ("none", "global", "clahe")
IMAGE_CACHES = ("auto", "memory", "disk")
TRAIN_SAMPLES = ("balanced", "stratified")  # how a --train-size sample is drawn
# Experiment trackers that --report-to names (Accelerate's), with "all" (every one installed) and "none".
TRACKERS = ("tensorboard", "trackio", "wandb", "mlflow")


def cache_root() -> Path:
    """Where tl_hub keeps what it computes once (feature caches, the Space's example photos): $TL_HUB_CACHE,
    default ~/.cache/tl_hub."""
    return Path(os.environ.get("TL_HUB_CACHE", Path.home() / ".cache" / "tl_hub"))


# Every epoch seeds numpy with seed * 1000 + epoch, which numpy needs below 2**32.
MAX_SEED = 2**32 // 1000 - 2
# More classes than any real classifier has (ImageNet-21k has 21,843): a label or a release beyond this is
# a typo or an id, not a class count.
MAX_CLASSES = 1_000_000
# Upper bounds beyond every real use, so that a typo (an extra zero, a pasted id) is an error, not a run that
# never ends or a machine out of memory. The flags' help and the errors state them.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536  # the largest published global batches (CLIP's 32,768) fit
MAX_SAMPLES = 10_000_000_000  # images in a sample; LAION-5B has 5.85 billion
MAX_SYNTHETIC_PER_CLASS = 20_000  # 860,000 rendered signs, 2.6 GB at 32x32: more than any study used
MAX_CACHE_VIEWS = 64
MAX_TTA_VIEWS = 16  # test-time views besides the image: each multiplies the cost of a prediction


def _check(condition: bool, name: str, value: Any, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}", name, value, expected)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(name: str, value: Any, top: int) -> None:
    _check(_is_int(value) and 0 < value <= top, name, value, f"a positive integer (at most {top:,})")


def _check_pair(name: str, pair: tuple[float, float], top: float | None = None) -> None:
    ok = 0 < pair[0] <= pair[1] and (top is None or pair[1] <= top)
    _check(ok, name, pair, "(low, high) with 0 < low <= high" + (f" <= {top}" if top is not None else ""))


def _check_size(name: str, value: int | None) -> None:
    if value is not None:
        ok = _is_int(value) and 0 < value <= MAX_SAMPLES
        _check(ok, name, value, f"a positive integer, or all (at most {MAX_SAMPLES:,})")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, value, "one of " + ", ".join(choices))


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model's input tensor (deterministic; no augmentation)."""

    input_size: int = 32  # square side in pixels
    grayscale: bool = False
    # Histogram equalization of the luminance, after resizing: "global" over the whole image, or "clahe"
    # (contrast-limited adaptive: one histogram per tile, so a dark sign on a bright sky gets contrast too).
    equalize: str = "none"
    clahe_clip_limit: float = 2.0  # OpenCV's clipLimit: how far a tile's histogram may peak
    clahe_grid: int = 4  # tiles per side: 8x8-pixel tiles on a 32x32 image
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    # None: squash the whole image to input_size (GTSRB crops keep their border).
    # A float: timm-style, resize the shorter side to input_size / crop_pct, then center-crop.
    crop_pct: float | None = None
    # Test-time views: each prediction averages the softmax over the image and one more view per scale, the
    # field of view scaled about the centre (0.9: the central 90% enlarged; 1.1: 10% more around it, border
    # pixels repeated). Empty: the image alone. The final validation and test metrics, evaluate.py, Predictor
    # and the Space use them; training and the per-epoch validation curve do not.
    tta_scales: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        # Above 4096 a single image's tensors alone would take gigabytes: a typo, not a model.
        _check(
            _is_int(self.input_size) and 8 <= self.input_size <= 4096,
            "input_size",
            self.input_size,
            "an integer from 8 to 4096",
        )
        _check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        _check_choice("equalize", self.equalize, EQUALIZATIONS)
        _check(self.clahe_clip_limit > 0, "clahe_clip_limit", self.clahe_clip_limit, "a positive number")
        _check(1 <= self.clahe_grid <= self.input_size, "clahe_grid", self.clahe_grid, "1 to input_size")
        _check(len(self.mean) == self.channels, "mean", self.mean, f"{self.channels} values")
        _check(len(self.std) == self.channels, "std", self.std, f"{self.channels} values")
        _check(all(math.isfinite(m) for m in self.mean), "mean", self.mean, "finite values")
        _check(all(0 < s < math.inf for s in self.std), "std", self.std, "positive values")
        if self.crop_pct is not None:
            _check(0 < self.crop_pct <= 1, "crop_pct", self.crop_pct, "a value in (0, 1] or None")
        _check(
            len(self.tta_scales) <= MAX_TTA_VIEWS
            and all(isinstance(s, int | float) and 0.5 <= s <= 2 and s != 1 for s in self.tta_scales),
            "tta_scales",
            self.tta_scales,
            f"at most {MAX_TTA_VIEWS} scales from 0.5 to 2, none of them 1 (the image is always a view)",
        )

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def pixel_settings(self) -> dict[str, Any]:
        """The settings that decide the model's input pixels (all but the test-time views): what the disk
        image cache and the feature cache key on, as they did before the views existed."""
        settings = dataclasses.asdict(self)
        del settings["tta_scales"]
        return settings

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        return cls(**_with_tuples(cls, d))


@dataclass(frozen=True)
class AugConfig:
    """Training-time augmentation, applied to whole batches of tensors."""

    rotation: float = 0.0  # max degrees; the angle is uniform in [-rotation, rotation]
    scale: tuple[float, float] = (1.0, 1.0)  # uniform zoom range
    translate: float = 0.0  # max shift as a fraction of the image side
    blur_prob: float = 0.0  # chance that an image is Gaussian-blurred
    blur_sigma: tuple[float, float] = (0.1, 1.0)  # sigma range in pixels
    hflip: bool = False  # never for traffic signs: a mirrored "keep left" is "keep right"
    # Random-resized crop for photos: the area fraction and the aspect ratio (width / height) of the crop,
    # which is resized back to the input size. (1, 1), (1, 1): off.
    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    # Photometric jitter: brightness, contrast and saturation factors uniform in [1 - x, 1 + x] per image.
    # 0: off.
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        _check(0 <= self.rotation <= 180, "rotation", self.rotation, "degrees in [0, 180]")
        _check(0 < self.scale[0] <= self.scale[1], "scale", self.scale, "(low, high) with 0 < low <= high")
        _check(0 <= self.translate < 0.5, "translate", self.translate, "a fraction in [0, 0.5)")
        _check(0 <= self.blur_prob <= 1, "blur_prob", self.blur_prob, "a probability in [0, 1]")
        _check_pair("blur_sigma", self.blur_sigma)
        _check_pair("crop_scale", self.crop_scale, top=1)
        for name in ("brightness", "contrast", "saturation"):
            _check(0 <= getattr(self, name) < 1, name, getattr(self, name), "a fraction in [0, 1)")
        _check_pair("crop_ratio", self.crop_ratio)

    @property
    def enabled(self) -> bool:
        return (
            self.rotation > 0
            or self.scale != (1.0, 1.0)
            or self.translate > 0
            or self.blur_prob > 0
            or self.hflip
            or self.crops
            or self.brightness > 0
            or self.contrast > 0
            or self.saturation > 0
        )

    @property
    def crops(self) -> bool:
        return self.crop_scale != (1.0, 1.0) or self.crop_ratio != (1.0, 1.0)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split."""

    dataset: str = "synthetic"  # a Hub dataset id, a local directory, or "synthetic"
    image_column: str | None = None  # None: found automatically
    label_column: str | None = None
    val_fraction: float = 0.1  # carved from train, stratified by class, when there is no validation split
    # Sample sizes (None: all images). val_size (class-balanced) carves validation from train when the
    # dataset has no validation split; it replaces val_fraction then.
    train_size: int | None = None
    # How the training sample is drawn: "balanced" (as equal a share per class as the data allows) or
    # "stratified" (each class keeps its share of the split).
    train_sample: str = "balanced"
    val_size: int | None = None
    synthetic_per_class: int = 200  # training images per class for --dataset synthetic
    # The dataset's name in model cards and the Space (None: a Hub id as it is, a local directory's name).
    dataset_name: str | None = None
    # Where decoded images live: "memory" (one uint8 tensor at the input size), "disk" (a cache file at
    # the storage size, read in batches: any dataset size), "auto" (disk when the preprocessing keeps a
    # margin for crops, crop_pct, or the images would take more than 2 GiB).
    image_cache: str = "auto"
    streaming: bool = False  # read the train split as a stream (datasets larger than the disk)

    def __post_init__(self) -> None:
        _check(bool(self.dataset), "dataset", self.dataset, "a Hub dataset id, a local path or 'synthetic'")
        _check(0 < self.val_fraction < 1, "val_fraction", self.val_fraction, "a fraction in (0, 1)")
        _check_size("train_size", self.train_size)
        _check_choice("train_sample", self.train_sample, TRAIN_SAMPLES)
        _check_size("val_size", self.val_size)
        _check_positive("synthetic_per_class", self.synthetic_per_class, MAX_SYNTHETIC_PER_CLASS)
        _check_choice("image_cache", self.image_cache, IMAGE_CACHES)


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings."""

    epochs: int = 20
    batch_size: int = 128  # global batch, split across processes
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    scheduler: str = "constant"
    lr_warmup_epochs: float = 0.0  # linear warm-up from 0, stepped every batch, over this many epochs
    label_smoothing: float = 0.0  # the cross-entropy's target smoothing
    # Train convolutions on channels-last (NHWC) batches: oneDNN's faster layout on a CPU (SignCNN at 32x32:
    # benchmarks/signcnn_step.py), the same weights and outputs up to float rounding.
    channels_last: bool = False
    # An exponential moving average of the weights (and BatchNorm's statistics), updated after every step: 0
    # off; else its decay per step, warmed up as min(decay, (1 + step) / (10 + step)) so that the average
    # follows the weights while they move fast. Validation, test and the release use the average.
    ema_decay: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        _check_positive("epochs", self.epochs, MAX_EPOCHS)
        _check_positive("batch_size", self.batch_size, MAX_BATCH_SIZE)
        _check(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "a positive finite number")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a value in [0, 1)")
        _check(
            0 <= self.weight_decay < math.inf,
            "weight_decay",
            self.weight_decay,
            "a non-negative finite number",
        )
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check(
            0 <= self.lr_warmup_epochs <= self.epochs,
            "lr_warmup_epochs",
            self.lr_warmup_epochs,
            "0 to the number of epochs",
        )
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "a value in [0, 1)")
        _check(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "a value in [0, 1) (0: off)")
        _check(
            _is_int(self.seed) and 0 <= self.seed <= MAX_SEED,
            "seed",
            self.seed,
            f"an integer from 0 to {MAX_SEED}",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Which network, and the arguments of its constructor besides num_classes."""

    architecture: str = "lenet5"
    drop_rate: float = 0.0
    # Where the convolutional base's starting weights come from: a timm pretrained tag such as
    # "vgg16.tv_in1k" (downloaded from the Hub by timm), a local weights file, or None for random init.
    pretrained: str | None = None
    # VGG16: global average pooling -> Dropout -> Dense num_classes instead of the study's Flatten -> Dense
    # 256 -> Dropout -> Dense (tl_hub.models.vgg); other families refuse it.
    pooled_head: bool = False

    def __post_init__(self) -> None:
        _check(0 <= self.drop_rate < 1, "drop_rate", self.drop_rate, "a probability in [0, 1)")
        _check(isinstance(self.pooled_head, bool), "pooled_head", self.pooled_head, "true or false")


@dataclass(frozen=True)
class TransferConfig:
    """Which layers train, from what start (the study's strategies), and how the frozen part is computed."""

    strategy: str = "scratch"
    init_from: str | None = None  # a tl_hub release directory or Hub repo to start from
    top_lr_scale: float = 0.1  # finetune-top: the last conv block's lr, relative to the head's
    base_lr_scale: float = 1.0  # finetune-all: the pretrained layers' lr, relative to the head's
    head_epochs: int = 5  # finetune-top: head-only epochs before the last block joins (was warmup_epochs)
    feature_cache: bool = True  # feature-extract: run the frozen base once per image, cache on disk
    # feature-extract: augmented views per image in the cache (0: one clean view); finetune-top on a
    # sequential base: K > 0 caches K views of the frozen prefix's output, one per epoch
    # (RunConfig.caches_prefix)
    cache_views: int = 0
    fast_base: bool = True  # feature extraction in bf16 autocast where the hardware has native bf16
    compile: bool = False  # torch.compile the model

    @property
    def spec(self) -> Strategy:
        """The strategy's record: which groups train when, whether it starts pretrained, caches features."""
        return get_strategy(self.strategy)

    @property
    def caches_features(self) -> bool:
        """Whether the head trains on the frozen base's cached features: the strategy allows it and the
        feature cache is on."""
        return self.spec.caches_features and self.feature_cache

    def schedule(self, lr: float, epochs: int) -> str:
        """What trains from which epoch at which learning rate, in a reader's words, e.g. "the head from
        epoch 1 at lr 0.001; the base's last stage from epoch 6 at lr 0.0001" (the card, the report)."""
        parts = []
        for stage in self.spec.stages:
            start = stage.first_epoch(self)
            if start > epochs:
                parts.append(f"{stage.words} not within the {epochs} epochs ({stage.after} {start - 1})")
            else:
                parts.append(f"{stage.words} from epoch {start} at lr {lr * stage.scale(self):g}")
        return "; ".join(parts)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransferConfig:
        """The section as config.json, run_config.json or results.json holds it; renamed fields still load."""
        return cls(**_renamed(d, RENAMED_FIELDS["transfer"]))

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check(0 < self.top_lr_scale <= 1, "top_lr_scale", self.top_lr_scale, "a value in (0, 1]")
        _check(0 < self.base_lr_scale <= 1, "base_lr_scale", self.base_lr_scale, "a value in (0, 1]")
        _check(
            _is_int(self.head_epochs) and 0 <= self.head_epochs <= MAX_EPOCHS,
            "head_epochs",
            self.head_epochs,
            f"a non-negative integer (at most {MAX_EPOCHS:,})",
        )
        _check(
            _is_int(self.cache_views) and 0 <= self.cache_views <= MAX_CACHE_VIEWS,
            "cache_views",
            self.cache_views,
            f"0 or more (at most {MAX_CACHE_VIEWS})",
        )
        if not self.spec.pretrained and self.init_from is not None:
            raise ConfigError(
                f"init_from={self.init_from!r} contradicts strategy='scratch' (random init): choose "
                "feature-extract, finetune-top or finetune-all"
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run; saved beside its checkpoints for --resume."""

    recipe: str
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def caches_prefix(self, sequential_base: bool) -> bool:
        """Whether this run trains on the frozen prefix's cached output: its strategy leaves the base below
        the last stage frozen, the base is sequential (VGG16, LeNet-5: the prefix is a slice of it), the
        feature cache is on, nothing is streamed, and no augmentation is lost (augmented views are cached,
        or there is none)."""
        t = self.transfer
        return (
            t.spec.cache == "prefix"
            and sequential_base
            and t.feature_cache
            and not self.data.streaming
            and (t.cache_views > 0 or not self.aug.enabled)
        )

    def replace(self, changes: dict[str, Any]) -> RunConfig:
        """A copy with fields replaced, named "section.field" (e.g. {"train.lr": 0.01}); each section is
        validated again."""
        sections: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            section, name = key.split(".")
            sections.setdefault(section, {})[name] = value
        return dataclasses.replace(
            self, **{s: dataclasses.replace(getattr(self, s), **fields) for s, fields in sections.items()}
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        aug = _with_tuples(AugConfig, d["aug"])
        data = dict(d["data"])
        if "max_train_samples" in data:  # before --train-sample: a stratified sample of that many
            stratified = data.pop("max_train_samples")
            if stratified is not None:
                logger.warning("max_train_samples is now train_size with train_sample 'stratified'")
                size = data.get("train_size")
                data["train_size"] = stratified if size is None else min(size, stratified)
                data["train_sample"] = "stratified"
        return cls(
            recipe=d["recipe"],
            model=ModelConfig(**d["model"]),
            preprocess=PreprocessConfig.from_dict(d["preprocess"]),
            aug=AugConfig(**aug),
            data=DataConfig(**data),
            train=TrainConfig(**d["train"]),
            transfer=TransferConfig.from_dict(d.get("transfer", {})),
        )


def _with_tuples(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """`d` (a section read from JSON) with lists turned back into tuples where `cls` declares a tuple."""
    tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
    return {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in d.items()}


# Fields renamed since a release: a run_config.json or config.json written before still loads, with a warning.
RENAMED_FIELDS = {"transfer": {"warmup_epochs": "head_epochs"}}


def _renamed(section: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    section = dict(section)
    for old, new in renames.items():
        if old in section and new not in section:
            logger.warning("%s is now called %s (read from a config written by an earlier tl_hub)", old, new)
            section[new] = section.pop(old)
    return section
