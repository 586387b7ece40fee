"""Where datasets come from: a Hub dataset id, a local directory (parquet files, an image folder with one
subfolder per class, or a `save_to_disk` output) or tl_hub's rendered signs ("synthetic"), opened as a
DatasetDict, with a one-line `DatasetError` saying how to fix a name that does not open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import datasets

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.naming import SYNTHETIC, looks_local
from tl_hub.errors import DatasetError

SYNTHETIC_SPLITS = ("train", "validation", "test")


def synthetic_dataset(
    per_class: int, seed: int = 0, size: int = 32, splits: tuple[str, ...] = SYNTHETIC_SPLITS
) -> datasets.DatasetDict:
    """tl_hub's rendered GTSRB: train (`per_class` per class), validation and test (a quarter as many); of
    these, `splits` only (each split's images are the same whichever others are rendered with it)."""
    from tl_hub.data.synthetic import generate_signs

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(GTSRB_CLASS_NAMES))}
    )
    rendered = {}
    # Distinct seeds per split: no rendered image is shared between train and evaluation.
    for offset, (name, n) in enumerate(
        zip(SYNTHETIC_SPLITS, (per_class, *[max(1, per_class // 4)] * 2), strict=True)
    ):
        if name not in splits:
            continue
        images, labels = generate_signs(n, seed=seed * 1000 + offset, size=size)
        rendered[name] = datasets.Dataset.from_dict(
            {"image": list(images), "label": labels.tolist()}, features=features
        )
    return datasets.DatasetDict(rendered)


def open_dataset(name: str, synthetic_per_class: int = 200, split: str | None = None) -> datasets.DatasetDict:
    """Open `name` as a DatasetDict; DatasetError with a fix when it cannot be found or reached.

    "synthetic" is always rendered from the same seed, like a fixed dataset: the training seed changes
    the training, not the data. Given the one `split` the caller reads, only that one is rendered.
    """
    if name == SYNTHETIC:
        if split is not None and split not in SYNTHETIC_SPLITS:  # refused before anything is rendered
            raise DatasetError(
                f"split {split!r} not in dataset {SYNTHETIC!r}: choose one of {', '.join(SYNTHETIC_SPLITS)}"
            )
        return synthetic_dataset(synthetic_per_class, splits=SYNTHETIC_SPLITS if split is None else (split,))
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            try:
                loaded = datasets.load_from_disk(str(path))
            except Exception as e:  # datasets fails on empty or damaged saves with anything
                raise DatasetError(
                    f"cannot read the save_to_disk dataset in {name!r} ({type(e).__name__}: {e}): "
                    "is it empty or damaged?"
                ) from None
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
        check_class_folders(path)
        try:
            return datasets.load_dataset(str(path))
        except datasets.exceptions.DatasetGenerationError as e:
            if parquet_rows(path) == 0:
                raise DatasetError(f"dataset {name!r} is empty: its parquet files hold no rows") from None
            cause = e.__cause__ or e
            raise DatasetError(
                f"cannot load the dataset in {name!r} ({type(cause).__name__}: {str(cause)[:200]}): "
                "is a file damaged?"
            ) from None
        except datasets.data_files.EmptyDatasetError:
            raise DatasetError(
                f"directory {name!r} holds no data files: expected parquet files, an image folder with one "
                "subfolder per class, or a save_to_disk output"
            ) from None
        except ValueError as e:
            if "corresponds to no data" in str(e):
                raise DatasetError(f"dataset {name!r} is empty: it has no rows") from None
            raise DatasetError(f"cannot load the dataset in {name!r}: {e}") from None
    if path.is_file():
        raise DatasetError(
            f"dataset {name!r} is a file: pass the directory that holds it (parquet files, class subfolders "
            "or a save_to_disk output)"
        )
    if looks_local(name):
        raise DatasetError(f"dataset path {name!r} does not exist: pass an existing directory or a Hub id")
    try:
        return datasets.load_dataset(name)
    except ConnectionError:
        raise DatasetError(
            f"cannot reach the Hugging Face Hub to load dataset {name!r}: "
            "use --dataset synthetic or a local directory (e.g. --dataset ./my-gtsrb)"
        ) from None
    except datasets.exceptions.DatasetNotFoundError:
        raise DatasetError(
            f"dataset {name!r} was not found on the Hub or as a local directory: check the id or the path"
        ) from None


def parquet_rows(path: Path) -> int | None:
    """Rows in the parquet files under `path`, from their footers (None: no parquet file, or unreadable)."""
    import pyarrow.parquet as pq

    files = list(path.rglob("*.parquet"))
    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files) if files else None
    except Exception:  # a damaged file: the caller reports the loading error
        return None


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)  # stat never opens: a named pipe does not block it
    except OSError:
        return False


def check_class_folders(path: Path) -> None:
    """Refuse an image folder with a class folder that holds no image in any split: `datasets` would drop
    that class without a word, and the model would have one class fewer than the folders say."""
    from PIL import Image

    extensions = set(Image.registered_extensions())
    tables = {".parquet", ".arrow", ".csv", ".json", ".jsonl"}  # data files, or an image folder's metadata
    direct: dict[Path, bool] = {}  # holds image files itself
    anywhere: dict[Path, bool] = {}  # holds image files at any depth
    children: dict[Path, list[Path]] = {}
    walked = []
    for directory, subdirs, files in os.walk(path):
        if any(Path(f).suffix.lower() in tables for f in files):
            return  # labels come from those files, not from folder names
        subdirs[:] = [sub for sub in subdirs if not sub.startswith(".")]
        walked.append((Path(directory), list(subdirs), files))
        for name in files:
            if Path(name).suffix.lower() in extensions and not _regular(Path(directory) / name):
                shown = str((Path(directory) / name).relative_to(path))
                raise DatasetError(
                    f"image file {shown!r} is not a regular file (a pipe, a device or a dangling link): "
                    "reading it could block or fail; remove it from the image folder"
                )
    for d, subdirs, files in reversed(walked):  # every folder after its subfolders
        children[d] = [d / sub for sub in subdirs]
        direct[d] = any(Path(f).suffix.lower() in extensions for f in files)
        anywhere[d] = direct[d] or any(anywhere.get(c, False) for c in children[d])
    if not anywhere.get(path, False):
        return  # not an image folder: datasets says what it is missing
    with_images: set[str] = set()
    empty: dict[str, Path] = {}
    for subs in children.values():
        if not any(direct.get(sub, False) for sub in subs):
            continue  # not a folder of class folders
        for sub in subs:
            if anywhere.get(sub, False):
                with_images.add(sub.name)
            else:
                empty.setdefault(sub.name, sub)
    dropped = sorted(set(empty) - with_images)
    if dropped:
        first = empty[dropped[0]].relative_to(path)
        raise DatasetError(
            f"class folder {str(first)!r} holds no images"
            + (f" ({len(dropped)} empty class folders: {', '.join(dropped[:5])})" if len(dropped) > 1 else "")
            + ": its class would be dropped without a word; add its images, or remove the folder"
        )
