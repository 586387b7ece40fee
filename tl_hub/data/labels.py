"""The label column, checked once wherever it comes from (parquet, image folder, Hub, stream; train and
evaluation alike), before anything is built from it.

`read_labels` reads a split's column through Arrow (no Python object per row) and refuses, in one line naming
the column, the first bad row, its value and the fix: missing labels (null), NaN and other non-integers,
negative labels, labels beyond the ClassLabel names and labels no classifier could have. `class_names` gives
the names: the ClassLabel's, or 0..max for bare integers, after making sure max is not a stray value (one
label 10^12 would otherwise make 10^12 names). `parse_label_map` reads evaluation's `--label-map`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from tl_hub.config import MAX_CLASSES
from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

# --label-map by position: the dataset's classes taken as the model's, in order (said, never assumed).
BY_POSITION = "position"
MAX_LABEL_MAP_BYTES = 2**20


def label_feature_is_numeric(feature: object) -> bool:
    """Whether a column's feature can hold class numbers: a ClassLabel, or integer or float values (floats
    are checked value by value: pandas writes integers with a missing value as floats)."""
    if isinstance(feature, datasets.ClassLabel):
        return True
    return isinstance(feature, datasets.Value) and ("int" in feature.dtype or "float" in feature.dtype)


def _rows(n: int, split: str) -> str:
    return f"{n:,} {split} {'row has' if n == 1 else 'rows have'}"


def _value(v: float | int) -> str:
    if isinstance(v, float) and not np.isfinite(v):
        return "NaN" if np.isnan(v) else str(v)
    return repr(int(v)) if float(v).is_integer() and abs(v) < 2**63 else repr(v)


def checked_labels(
    values: pa.Array | pa.ChunkedArray, column: str, split: str, num_names: int | None
) -> np.ndarray:
    """`values` as int64 class numbers, or a DatasetError naming the column, the first bad row, its value
    and the fix. `num_names`: the ClassLabel's name count (None for bare integers, whose range
    `class_names` checks)."""
    where = f"column {column!r}: "
    span = f"from 0 to {num_names - 1}" if num_names else "from 0 to the number of classes - 1"
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
        raise DatasetError(
            f"{where}the {split} labels are {kind} values, not class numbers: name the column of integer "
            "class labels with --label-column"
        )
    missing = np.asarray(values.is_null())
    if missing.any():
        n, row = int(missing.sum()), int(np.flatnonzero(missing)[0])
        raise DatasetError(
            f"{where}{_rows(n, split)} no label (row {row}: null): every row needs a class "
            f"number {span}; fix or drop {'it' if n == 1 else 'them'}"
        )
    labels = np.asarray(values)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            n, row = int(bad.sum()), int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{where}{_rows(n, split)} a label that is not an integer (row {row}: "
                f"{_value(float(labels[row]))}): labels are class numbers {span}; fix or drop "
                f"{'it' if n == 1 else 'them'}"
            )
    rules = [(labels < 0, "a negative label")]
    if num_names is not None:
        rules.append((labels >= num_names, f"a label beyond the {num_names} label names"))
    huge = f"a label of {MAX_CLASSES:,} or more, more classes than any model has"
    rules.append((labels >= MAX_CLASSES, huge))
    for bad, rule in rules:
        if bad.any():
            n, row = int(bad.sum()), int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{where}{_rows(n, split)} {rule} (row {row}: {_value(labels[row].item())}): "
                f"labels must run {span}; fix or drop {'it' if n == 1 else 'them'}"
            )
    return labels.astype(np.int64)


def label_column(ds: datasets.Dataset, column: str) -> pa.ChunkedArray:
    """The column as Arrow, in the dataset's row order (after any `select`): no Python object per row."""
    return ds.with_format("arrow")[column]


def named_classes(feature: object) -> int | None:
    """How many classes a label feature names: a ClassLabel's name count, None for bare integers."""
    return len(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def read_labels(ds: datasets.Dataset, column: str, split: str, num_names: int | None) -> np.ndarray:
    """The split's labels, checked (`checked_labels`): the one check of a label column. `num_names`: how many
    classes the labels may name (the train split's label names, for the splits read after it; for the
    train split itself, `named_classes` of its feature)."""
    return checked_labels(label_column(ds, column), column, split, num_names)


def unlabelled(ds: datasets.Dataset, column: str) -> bool:
    """Whether a split carries no labels at all: the Hub marks those with -1 (or leaves them null)."""
    values = label_column(ds, column)
    if len(values) == 0:
        return False
    if values.null_count == len(values):
        return True
    if values.null_count:
        return False
    labels = np.asarray(values)
    return bool((labels == -1).all())


def class_names(feature: object, labels: np.ndarray, column: str, split: str = "train") -> list[str]:
    """The class names: the ClassLabel's, else "0".."max" (GTSRB's names for 43 bare integer classes).

    Bare integers take 0..max as the classes, so a stray large label shows as numbers with no image; more of
    those than classes in use is refused before a single name is made.
    """
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    if not len(labels):
        return []
    present = np.unique(labels)  # sorted
    num = int(present[-1]) + 1
    unused = num - len(present)
    if unused > len(present):
        gaps = np.flatnonzero(present != np.arange(len(present)))
        first = int(gaps[0]) if len(gaps) else len(present)
        raise DatasetError(
            f"column {column!r}: integer labels up to {num - 1} with only {len(present)} classes in use "
            f"({unused:,} numbers have no image, {first} first): is {num - 1} a stray label? labels must run "
            f"from 0 to the number of classes - 1 (the {split} split)"
        )
    if num == len(GTSRB_CLASS_NAMES):
        logger.info("integer labels with 43 classes and no names: using the GTSRB class names")
        return list(GTSRB_CLASS_NAMES)
    return [str(i) for i in range(num)]


def parse_label_map(text: str) -> dict[str, str] | str:
    """`--label-map`: "DATA=MODEL,..." pairs, a JSON file of {data name: model name}, or "position"."""
    if text == BY_POSITION:
        return BY_POSITION
    path = Path(text).expanduser()
    if text.endswith(".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--label-map {text!r}: no such file; give DATA=MODEL pairs or a JSON file")
        if path.stat().st_size > MAX_LABEL_MAP_BYTES:
            raise ConfigError(f"--label-map {text!r}: the file is over {MAX_LABEL_MAP_BYTES // 2**20} MB")
        try:
            mapping = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"--label-map {text!r} is not valid JSON ({type(e).__name__})") from None
        if not (isinstance(mapping, dict) and all(isinstance(v, str) for v in mapping.values())):
            raise ConfigError(
                f"--label-map {text!r}: expected a JSON object of dataset name -> model name, both strings"
            )
        return mapping
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        data, sep, model = (part.strip() for part in pair.partition("="))
        if not sep or not data or not model:
            raise ConfigError(
                f"--label-map {text!r}: {pair.strip()!r} is not DATA=MODEL; e.g. --label-map c1=cat,c2=dog"
            )
        if data in mapping:
            raise ConfigError(f"--label-map {text!r} maps {data!r} twice")
        mapping[data] = model
    return mapping
