"""Datasets in, canonical tensors out.

`--dataset` is a Hub dataset id, a local directory (parquet files, an image folder with one subfolder per
class, or a `save_to_disk` output) or "synthetic", opened by `tl_hub.data.sources`. Whatever the source,
`prepare_data` returns each split decoded and preprocessed once, as a uint8 tensor, with integer labels and
the label names.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Protocol

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tl_hub.config import DataConfig, PreprocessConfig
from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.images import load_image
from tl_hub.data.labels import class_names, label_feature_is_numeric, named_classes, read_labels, unlabelled
from tl_hub.data.naming import SYNTHETIC
from tl_hub.data.preprocess import preprocess_image, storage_size
from tl_hub.data.sources import open_dataset
from tl_hub.data.splits import balanced_sample, stratified_group_split, stratified_sample
from tl_hub.data.store import ImageStore, StoreDataset, build_store, collate, memory_budget
from tl_hub.errors import DatasetError
from tl_hub.progress import Progress

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img", "images", "picture")
LABEL_COLUMNS = ("label", "labels", "ClassId", "class", "target")
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")
# --image-cache auto keeps decoded images in memory up to this size, on disk beyond it.
DISK_FROM_BYTES = 2 * 2**30
# GTSRB file names: CCCCC/TTTTT_FFFFF.ppm (class folder, track = one physical sign, frame).
_GTSRB_TRACK = re.compile(r"(\d{5})_\d{5}\.\w+$")


@dataclass
class SplitData:
    # uint8 (N, C, H, W), preprocessed: in memory at the input size, or in the disk image cache at the
    # storage size (tl_hub.data.store)
    images: torch.Tensor | ImageStore
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """A short hash of the labels and preprocessed pixels: equal fingerprints, the same images in the
        same order (how a comparison shows that its arms were scored on one split)."""
        digest = hashlib.sha256(self.labels.numpy().tobytes())
        if isinstance(self.images, ImageStore):
            digest.update(self.images.digest.encode())
        else:
            digest.update(self.images.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def dataset(self) -> Dataset:
        """(image, label) pairs for a DataLoader; a disk cache is read a whole batch at a time."""
        if isinstance(self.images, ImageStore):
            return StoreDataset(self.images, self.labels)
        return TensorDataset(self.images, self.labels)

    def loader(self, batch_size: int, shuffle: bool = True) -> DataLoader:
        """Batches, shuffled for training (Accelerate's seedable sampler makes the order a function of the
        seed and the epoch)."""
        return DataLoader(self.dataset(), batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


class TrainSplit(Protocol):
    """What training needs of its split: a SplitData, or tl_hub.data.streaming's StreamSplit."""

    def __len__(self) -> int: ...

    def fingerprint(self) -> str: ...

    def loader(self, batch_size: int) -> DataLoader: ...  # StreamSplit's also takes this process's shard


@dataclass
class PreparedData:
    train: TrainSplit  # decoded, or (--streaming) read as a stream every epoch
    validation: SplitData
    test: SplitData | None
    label_names: list[str]
    dataset: str  # what --dataset named
    validation_from: str  # how the validation split was obtained, for logs and the model card
    skipped_images: int  # unreadable images dropped while decoding

    def splits(self) -> dict[str, SplitData]:
        """train, validation and, when the dataset has one, test."""
        splits = {"train": self.train, "validation": self.validation, "test": self.test}
        return {name: split for name, split in splits.items() if split is not None}

    def counts(self) -> dict[str, int]:
        """Images per split."""
        return {name: len(split) for name, split in self.splits().items()}

    def fingerprints(self) -> dict[str, str]:
        """SplitData.fingerprint of every split."""
        return {name: split.fingerprint() for name, split in self.splits().items()}


def dataset_label_names(cfg: DataConfig) -> list[str]:
    """The class names of `cfg.dataset`'s train split, without decoding any image."""
    if cfg.dataset == SYNTHETIC:
        return list(GTSRB_CLASS_NAMES)
    dsd = open_dataset(cfg.dataset, cfg.synthetic_per_class)
    if "train" not in dsd:
        raise DatasetError(
            f"dataset {cfg.dataset!r} has no 'train' split (splits: {', '.join(dsd) or 'none'})"
        )
    train = dsd["train"]
    _, label_col = resolve_columns(train.features, cfg.image_column, cfg.label_column)
    feature = train.features[label_col]
    return class_names(feature, read_labels(train, label_col, "train", named_classes(feature)), label_col)


def resolve_columns(
    features: datasets.Features, image_column: str | None, label_column: str | None
) -> tuple[str, str]:
    """Find the image and label columns, or check the ones the user named."""
    columns = list(features)
    listing = ", ".join(columns) or "(none)"

    def pick(kind: str, wanted: str | None, candidates: tuple[str, ...], flag: str) -> str:
        if wanted is not None:
            if wanted not in features:
                raise DatasetError(f"{kind} column {wanted!r} not in the dataset; its columns are: {listing}")
            return wanted
        for c in candidates:
            if c in features:
                return c
        if kind == "image":
            found = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        else:
            found = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
        if len(found) == 1:
            return found[0]
        if kind == "label" and columns == [image_column or "image"]:
            raise DatasetError(
                f"no label column: the dataset has only images ({listing}); an image folder needs one "
                "subfolder per class, two or more"
            )
        raise DatasetError(f"no {kind} column found among: {listing}; name it with {flag} COLUMN")

    image = pick("image", image_column, IMAGE_COLUMNS, "--image-column")
    label = pick("label", label_column, LABEL_COLUMNS, "--label-column")
    if not isinstance(features[image], datasets.Image):
        raise DatasetError(
            f"column {image!r} holds {type(features[image]).__name__} values, not images; "
            f"name the image column with --image-column (columns: {listing})"
        )
    f = features[label]
    if not label_feature_is_numeric(f):
        raise DatasetError(
            f"column {label!r} holds {f!r}, not integer class labels; "
            f"name the label column with --label-column (columns: {listing})"
        )
    return image, label


def check_train_classes(labels: np.ndarray, label_names: list[str], named: bool) -> None:
    """Refuse training labels (already checked by `read_labels`) of one class only, which no classifier
    learns from.

    `named` says whether the names come from the dataset (a ClassLabel); integer labels without names take
    0..max as the classes (`class_names`), so a class number without images is said.
    """
    num = len(label_names)
    present = np.unique(labels)
    if len(present) < 2:
        only = label_names[int(present[0])] if len(present) else "none"
        raise DatasetError(
            f"the train split has one class only ({only!r}): a classifier needs images of two or more classes"
        )
    if not named and len(present) < num:
        missing = sorted(set(range(num)) - set(present.tolist()))  # class_names bounds num by 2 x present
        logger.warning(
            "%d classes have no training image: %s", len(missing), ", ".join(map(str, missing[:10]))
        )


def labelled_test(
    test: datasets.Dataset | None, label_col: str, label_names: list[str]
) -> datasets.Dataset | None:
    """`test`, if there is one and it has labels (the Hub marks an unlabelled one with -1s)."""
    if test is None:
        return None
    if unlabelled(test, label_col):
        logger.warning("the test split has no labels (all -1): it is not scored")
        return None
    read_labels(test, label_col, "test", len(label_names))
    return test


def _image_paths(ds: datasets.Dataset, column: str) -> list[str | None]:
    """File names stored with the images, read from Arrow without decoding any image."""
    col = ds.with_format("arrow")[:][column]
    if hasattr(col, "combine_chunks"):
        col = col.combine_chunks()
    try:
        return col.field("path").to_pylist()
    except (AttributeError, KeyError):
        return [None] * len(ds)


def track_groups(paths: list[str | None], labels: np.ndarray) -> np.ndarray | None:
    """Group ids keeping each GTSRB track (one physical sign) together; None when names don't follow it."""
    tracks = [_GTSRB_TRACK.search(p) if p else None for p in paths]
    if not tracks or not all(tracks):
        return None
    # Track numbers restart in every class folder, so a group is (label, track).
    return labels.astype(np.int64) * 100_000 + np.array([int(m.group(1)) for m in tracks], dtype=np.int64)


def uses_disk(image_cache: str, cfg: PreprocessConfig, images: int) -> bool:
    """Whether --image-cache `image_cache` keeps `images` decoded images in the disk cache: "auto" does
    when the preprocessing keeps a margin for crops or they would take more than DISK_FROM_BYTES. "memory"
    for more than the machine (or its container) has room for is refused: the kernel would kill the run."""
    if image_cache == "memory":
        need, room = images * cfg.channels * cfg.input_size**2, memory_budget()
        if room is not None and need > room:
            raise DatasetError(
                f"--image-cache memory: {images:,} decoded images take {need / 1e9:.1f} GB and this machine "
                f"has {room / 1e9:.1f} GB free: use --image-cache disk (or auto, the default)"
            )
    if image_cache != "auto":
        return image_cache == "disk"
    side = storage_size(cfg)
    return side > cfg.input_size or images * cfg.channels * side * side > DISK_FROM_BYTES


def decode_split(
    ds: datasets.Dataset,
    image_column: str,
    label_column: str,
    cfg: PreprocessConfig,
    desc: str,
    disk: bool = False,
) -> tuple[SplitData, int]:
    """Decode and preprocess every image once, into memory or (`disk`) the disk image cache; unreadable
    images are skipped and counted."""
    if disk:
        store = build_store(ds, image_column, cfg, storage_size(cfg), desc)
        labels = torch.from_numpy(np.asarray(ds[label_column], dtype=np.int64)[store.rows])
        skipped = len(ds) - len(store)
        if skipped:
            logger.warning("skipped %d unreadable image(s) of %d in %s", skipped, len(ds), desc)
        if not len(store):
            raise DatasetError(f"the {desc} split has no readable images ({len(ds)} rows, all unreadable)")
        return SplitData(store, labels), skipped
    ds = ds.cast_column(image_column, datasets.Image(decode=False))
    images, labels, skipped = [], [], 0
    with Progress(total=len(ds), desc=f"decoding {desc}", unit="img", leave=False) as bar:
        for batch in ds.iter(batch_size=1024):
            for raw, label in zip(batch[image_column], batch[label_column], strict=True):
                try:
                    images.append(preprocess_image(load_image(raw), cfg))
                    labels.append(label)
                except Exception as e:
                    skipped += 1
                    name = (raw or {}).get("path") if isinstance(raw, dict) else None
                    logger.warning("skipping unreadable image %s in %s: %s", name or "?", desc, e)
            bar.update(len(batch[label_column]))
    if skipped:
        logger.warning("skipped %d unreadable image(s) of %d in %s", skipped, len(ds), desc)
    if not images:
        raise DatasetError(f"the {desc} split has no readable images ({len(ds)} rows, {skipped} unreadable)")
    return SplitData(torch.stack(images), torch.tensor(labels, dtype=torch.int64)), skipped


def decode_splits(
    named: dict[str, datasets.Dataset | None],
    columns: tuple[str, str],
    preprocess: PreprocessConfig,
    image_cache: str,
) -> tuple[dict[str, SplitData], int]:
    """Decode every split given (None: absent), in memory or in the disk image cache as `image_cache` says
    for all of them together; returns the splits and how many unreadable images were skipped."""
    todo = {name: ds for name, ds in named.items() if ds is not None}
    disk = uses_disk(image_cache, preprocess, sum(len(ds) for ds in todo.values()))
    splits: dict[str, SplitData] = {}
    skipped = 0
    for name, ds in todo.items():
        splits[name], n = decode_split(ds, *columns, preprocess, name, disk)
        skipped += n
    return splits, skipped


def prepare_data(cfg: DataConfig, preprocess: PreprocessConfig, seed: int) -> PreparedData:
    """Open, split, subsample, decode and preprocess the dataset `cfg.dataset`."""
    dsd = open_dataset(cfg.dataset, cfg.synthetic_per_class)
    if "train" not in dsd:
        raise DatasetError(
            f"dataset {cfg.dataset!r} has no 'train' split (splits: {', '.join(dsd) or 'none'})"
        )
    train = dsd["train"]
    if len(train) == 0:
        raise DatasetError(f"dataset {cfg.dataset!r} is empty: its train split has no rows")
    image_col, label_col = resolve_columns(train.features, cfg.image_column, cfg.label_column)
    feature = train.features[label_col]
    labels = read_labels(train, label_col, "train", named_classes(feature))
    label_names = class_names(feature, labels, label_col)
    named = isinstance(feature, datasets.ClassLabel)
    check_train_classes(labels, label_names, named)

    val_name = next((s for s in VALIDATION_SPLITS if s in dsd), None)
    if val_name is not None:
        validation = dsd[val_name]
        if len(validation) == 0:
            raise DatasetError(f"dataset {cfg.dataset!r}: its {val_name!r} split has no rows")
        val_labels = read_labels(validation, label_col, val_name, len(label_names))
        validation_from = f"the dataset's '{val_name}' split"
        if cfg.val_size is not None and cfg.val_size < len(validation):
            validation = validation.select(balanced_sample(val_labels, cfg.val_size, seed))
            validation_from += f", a class-balanced sample of {cfg.val_size}"
    else:
        if cfg.val_size is not None:
            val_idx = balanced_sample(labels, min(cfg.val_size, len(train) - 1), seed)
            validation_from = f"a class-balanced sample of {len(val_idx)} training images, seed {seed}"
        else:
            groups = track_groups(_image_paths(train, image_col), labels)
            _, val_idx = stratified_group_split(labels, groups, cfg.val_fraction, seed)
            validation_from = f"{cfg.val_fraction:.0%} of train, seed {seed}, stratified by class" + (
                ", whole GTSRB tracks kept on one side" if groups is not None else ""
            )
        train_idx = np.setdiff1d(np.arange(len(train)), val_idx)
        validation = train.select(val_idx)
        train, labels = train.select(train_idx), labels[train_idx]
    logger.info("validation: %s (%d images)", validation_from, len(validation))
    if cfg.val_size is not None and len(validation) < cfg.val_size:  # said, then validated on all there is
        logger.warning(
            "validation: %d images, fewer than the %d asked for (--val-size)", len(validation), cfg.val_size
        )
    if cfg.train_size is not None and len(train) < cfg.train_size:  # said, then trained on all there is
        logger.warning(
            "train: %d images, fewer than the %d asked for (--train-size): the dataset has %d, of which "
            "validation took %d",
            len(train),
            cfg.train_size,
            len(dsd["train"]),
            len(validation) if val_name is None else 0,
        )
    elif cfg.train_size is not None and cfg.train_size < len(train):
        if cfg.train_sample == "balanced":
            keep = balanced_sample(labels, cfg.train_size, seed + 1)
        else:
            keep = stratified_sample(labels, cfg.train_size, seed + 2)  # not the validation's draws
        train = train.select(keep)
        logger.info(
            "train: a class-%s sample of %d images, seed %d",
            cfg.train_sample,
            len(keep),
            seed + (1 if cfg.train_sample == "balanced" else 2),
        )

    test = labelled_test(dsd.get("test"), label_col, label_names)
    splits, skipped = decode_splits(
        {"train": train, "validation": validation, "test": test},
        (image_col, label_col),
        preprocess,
        cfg.image_cache,
    )
    return PreparedData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits.get("test"),
        label_names=label_names,
        dataset=cfg.dataset,
        validation_from=validation_from,
        skipped_images=skipped,
    )
