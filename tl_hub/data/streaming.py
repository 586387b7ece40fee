"""`--streaming`: the train split read as a stream, for datasets larger than the disk.

`datasets` streams the rows (from the Hub, or from local files); each epoch reshuffles them through a buffer
(`IterableDataset.shuffle` + `set_epoch`), groups them into batches, and DataLoader workers decode the
batches: worker k decodes batches k, k + W, ..., so the batches and their order do not depend on the number of
workers, and an epoch is a function of (seed, epoch): `--resume` after an epoch replays what an uninterrupted
run does. Images come out at the storage side (`tl_hub.data.preprocess.storage_size`) and get the same batch
augmentation as cached images.

Evaluation splits are small by comparison: the first `--val-size` images (default 2,000) of the dataset's
validation and test splits, or of train when it has no validation split (training then skips them), are
decoded once like any split, into memory or the disk image cache.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
from collections.abc import Iterator
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader, IterableDataset

from tl_hub.config import DataConfig, PreprocessConfig
from tl_hub.data.images import load_image
from tl_hub.data.labels import checked_labels, read_labels
from tl_hub.data.loading import (
    VALIDATION_SPLITS,
    PreparedData,
    decode_splits,
    labelled_test,
    resolve_columns,
)
from tl_hub.data.naming import SYNTHETIC
from tl_hub.data.preprocess import decoded_side, preprocess_image, storage_size
from tl_hub.data.store import decode_workers, init_decoder
from tl_hub.errors import DatasetError
from tl_hub.progress import Progress

logger = logging.getLogger(__name__)

EVAL_IMAGES = 2000  # images per evaluation split when streaming, unless --val-size says otherwise
SHUFFLE_BUFFER = 10_000  # rows held for shuffling: about 1 GB of 100 KB JPEGs at most


def open_stream(name: str) -> datasets.IterableDatasetDict:
    """`name` (a Hub id or a local directory) as streamed splits; DatasetError with a fix otherwise."""
    if name == SYNTHETIC:
        raise DatasetError(
            "--streaming reads a Hub dataset or a local directory; 'synthetic' is rendered in memory: "
            "drop --streaming"
        )
    try:
        streams = datasets.load_dataset(name, streaming=True)
    except ConnectionError:
        raise DatasetError(
            f"cannot reach the Hugging Face Hub to stream dataset {name!r}: use a local directory"
        ) from None
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError, ValueError) as e:
        raise DatasetError(f"cannot stream dataset {name!r}: {e}") from None
    if "train" not in streams:
        raise DatasetError(f"dataset {name!r} has no 'train' split (splits: {', '.join(streams) or 'none'})")
    return streams


def split_length(stream: datasets.IterableDataset, split: str, label_column: str) -> int:
    """Rows in `split`: from the dataset's metadata, or counted over the label column alone."""
    info = (stream.info.splits or {}).get(split)
    if info is not None and info.num_examples:
        return int(info.num_examples)
    logger.info("%s: the dataset does not say how many rows it has: counting them (labels only)", split)
    return sum(1 for _ in stream.select_columns([label_column]))


def held_out(image: dict[str, Any], fraction: float) -> bool:
    """Whether a streamed train row belongs to the validation carve: decided by a hash of its image, so
    the choice is the same in every pass, whatever order the rows come in."""
    key = image.get("bytes") or str(image.get("path")).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") < fraction * 2**64


class StreamSplit:
    """The train split as a stream: what training reads instead of a decoded SplitData."""

    def __init__(
        self,
        stream: datasets.IterableDataset,
        columns: tuple[str, str],
        preprocess: PreprocessConfig,
        length: int,
        num_classes: int,
        seed: int,
        held_out: float = 0.0,
    ):
        self.stream = stream.cast_column(columns[0], datasets.Image(decode=False))
        self.columns, self.preprocess, self.length = columns, preprocess, length
        self.num_classes, self.seed, self.held_out = num_classes, seed, held_out

    def __len__(self) -> int:
        return self.length

    def fingerprint(self) -> str:
        """A short hash of what the stream is (the images are never all held at once)."""
        what = [self.stream.info.dataset_name, self.length, list(self.columns), self.seed, self.held_out]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]

    def loader(self, batch_size: int, process: int = 0, processes: int = 1) -> DataLoader:
        """Shuffled batches of `batch_size` images (this process's share of the global batch) from this
        process's own shard of the stream, decoded by a pool of processes, one per core."""
        return DataLoader(StreamImages(self, batch_size, process, processes), batch_size=None)


class StreamImages(IterableDataset):
    """(uint8 images at the storage side, labels) batches of one epoch of the shuffled stream.

    This process reads the rows (undecoded) and shuffles them; worker processes decode them a batch at a
    time, a few batches ahead, and the batches come back in order. So the stream is read once, and the
    epoch is a function of (seed, epoch) whatever the number of workers.

    With several processes, each reads its own shard (`datasets.distributed.split_dataset_by_node`: whole
    files when they divide evenly, else every `processes`-th row), so no image is read twice an epoch.
    Shards need not hold the same number of images (files differ in size, the validation carve and
    unreadable images fall unevenly): before every batch the processes agree that each has one, and the
    epoch ends when one has none (DDP needs every process to take every step). A few images of the larger
    shards go unread then; never more batches than `len()` says.
    """

    def __init__(self, split: StreamSplit, batch_size: int, process: int = 0, processes: int = 1):
        assert 0 <= process < processes, (process, processes)
        self.split, self.batch_size, self.epoch = split, batch_size, 0
        self.process, self.processes = process, processes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches an epoch: the same on every process."""
        return math.ceil(math.ceil(len(self.split) / self.processes) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches()
        if self.processes == 1:
            yield from batches
            return
        for count, batch in enumerate(batches):
            if count == len(self) or not _every_process_has_one(True):
                return
            yield batch
        _every_process_has_one(False)

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        split = self.split
        # The shards' order (datasets' shuffle; a buffer of 1 keeps the rows in order), this process's share
        # of them, then the rows through a buffer of our own, after the validation carve is dropped.
        stream = split.stream.shuffle(seed=split.seed, buffer_size=1)
        if self.processes > 1:
            stream = split_dataset_by_node(stream, rank=self.process, world_size=self.processes)
        stream.set_epoch(self.epoch)
        image_column = split.columns[0]
        rows = (r for r in stream if not (split.held_out and held_out(r[image_column], split.held_out)))
        rows = _buffer_shuffled(rows, np.random.default_rng([split.seed, self.epoch]), SHUFFLE_BUFFER)
        task = (split.columns, split.preprocess, split.num_classes)
        workers = decode_workers()
        pool = multiprocessing.get_context("fork").Pool(workers, init_decoder) if workers > 1 else None
        try:
            pending: collections.deque = collections.deque()
            for index, batch in enumerate(_batched(rows, self.batch_size)):
                args = (batch, index, *task)
                pending.append(pool.apply_async(_decode_rows, args) if pool else _Done(_decode_rows(*args)))
                if len(pending) > 2 * workers:  # a few batches ahead, never the whole stream
                    yield from _collated(pending.popleft().get())
            while pending:
                yield from _collated(pending.popleft().get())
        finally:
            if pool is not None:
                pool.terminate()


def _collated(pairs: list[tuple[torch.Tensor, int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A decoded batch as (images, labels); nothing when all its images were unreadable."""
    if pairs:
        yield torch.stack([image for image, _ in pairs]), torch.tensor([label for _, label in pairs])


def _every_process_has_one(mine: bool) -> bool:
    """Whether every process has a batch (all of them call this the same number of times)."""
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([int(mine)], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


class _Done:
    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


def _batched(rows: Iterator[Any], n: int) -> Iterator[tuple[Any, ...]]:
    """itertools.batched (Python 3.12)."""
    while batch := tuple(itertools.islice(rows, n)):
        yield batch


def _buffer_shuffled(rows: Iterator[Any], rng: np.random.Generator, size: int) -> Iterator[Any]:
    """`rows` in a random order drawn through a buffer of `size` rows (what fits in memory)."""
    buffer: list[Any] = []
    for row in rows:
        if len(buffer) < size:
            buffer.append(row)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = row
    rng.shuffle(buffer)
    yield from buffer


def _decode_rows(
    rows: tuple[dict[str, Any], ...],
    index: int,
    columns: tuple[str, str],
    preprocess: PreprocessConfig,
    num_classes: int,
) -> list[tuple[torch.Tensor, int]]:
    """One batch of streamed rows decoded (in a worker process); unreadable images are skipped."""
    image_column, label_column = columns
    side = storage_size(preprocess)
    # The same check as a whole split's, on this batch (its rows counted from the batch's first)
    values = pa.array([row[label_column] for row in rows])
    labels = checked_labels(values, label_column, f"streamed train (batch {index})", num_classes)
    out = []
    for row, label in zip(rows, labels.tolist(), strict=True):
        try:
            image = load_image(row[image_column], draft=decoded_side(preprocess))
            out.append((preprocess_image(image, preprocess, side), label))
        except Exception as e:  # an unreadable file: skipped, as when decoding a whole split
            name = row[image_column].get("path") or "?"
            logger.warning("skipping unreadable streamed image %s: %s", name, e)
    return out


def eval_rows(stream: datasets.IterableDataset, count: int, image_column: str) -> datasets.Dataset:
    """The first `count` rows of `stream`, undecoded: a Dataset decoded like any split."""
    rows = list(stream.cast_column(image_column, datasets.Image(decode=False)).take(count))
    return datasets.Dataset.from_list(rows, features=stream.features)


def carved_rows(stream: datasets.IterableDataset, fraction: float, image_column: str) -> datasets.Dataset:
    """The rows of `stream` that `held_out` picks, undecoded: one pass over the split, reading only."""
    rows = []
    for row in Progress(
        stream.cast_column(image_column, datasets.Image(decode=False)), desc="validation carve"
    ):
        if held_out(row[image_column], fraction):
            rows.append(row)
    return datasets.Dataset.from_list(rows, features=stream.features)


def prepare_streaming(cfg: DataConfig, preprocess: PreprocessConfig, seed: int) -> PreparedData:
    """`prepare_data` for --streaming: the train split as a StreamSplit, the evaluation splits decoded."""
    if cfg.train_size is not None:
        raise DatasetError(
            f"--train-size {cfg.train_size} draws a sample from the whole split, which --streaming never "
            "holds: drop --train-size, or drop --streaming"
        )
    streams = open_stream(cfg.dataset)
    train = streams["train"]
    columns = resolve_columns(train.features, cfg.image_column, cfg.label_column)
    feature = train.features[columns[1]]
    if not isinstance(feature, datasets.ClassLabel):
        raise DatasetError(
            f"--streaming needs the class names up front: column {columns[1]!r} holds {feature!r}, not a "
            "ClassLabel; drop --streaming"
        )
    label_names = list(feature.names)
    count = cfg.val_size or EVAL_IMAGES
    length = split_length(train, "train", columns[1])
    val_name = next((s for s in VALIDATION_SPLITS if s in streams), None)
    fraction = 0.0
    if val_name is not None:
        evaluation = {"validation": eval_rows(streams[val_name], count, columns[0])}
        validation_from = f"the first {len(evaluation['validation'])} images of the '{val_name}' split"
    else:  # spread over the whole split: a stream's head may hold one class only
        fraction = min(0.5, count / length)
        evaluation = {"validation": carved_rows(train, fraction, columns[0])}
        length -= len(evaluation["validation"])
        validation_from = (
            f"{len(evaluation['validation'])} train images picked by a hash of each image "
            f"({fraction:.1%}), which training skips"
        )
    logger.info("validation: %s (streaming; --val-size sets how many)", validation_from)
    read_labels(evaluation["validation"], columns[1], "validation", len(label_names))
    if "test" in streams:
        test = eval_rows(streams["test"], count, columns[0])
        evaluation["test"] = labelled_test(test, columns[1], label_names)
    splits, skipped = decode_splits(evaluation, columns, preprocess, cfg.image_cache)
    stream = StreamSplit(train, columns, preprocess, length, len(label_names), seed, fraction)
    logger.info("train: streamed, %d images an epoch, decoded by %d worker(s)", length, decode_workers())
    return PreparedData(
        train=stream,
        validation=splits["validation"],
        test=splits.get("test"),
        label_names=label_names,
        dataset=cfg.dataset,
        validation_from=validation_from,
        skipped_images=skipped,
    )
