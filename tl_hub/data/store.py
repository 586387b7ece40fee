"""The decoded-image cache on disk: photo datasets of any size, decoded once, read in batches.

A split's images are decoded and preprocessed once, in parallel across the cores, into one file of uint8
pixels (N, C, S, S) at the storage side S (`tl_hub.data.preprocess.storage_size`: the input size plus the
margin the centre crop leaves, so random-resized crops can reach it). Training reads shuffled batches from
the file with `pread`, so the process holds one batch, not the dataset, whatever its size; the kernel's page
cache keeps the file warm between epochs without counting against the process.

The key hashes the dataset (its `datasets` fingerprint, which follows the files and the rows selected), the
image column, the preprocessing and the storage side, so a rerun, another seed's training run or
`compare.py`'s arms find the entry and any change misses it. Entries are written under a temporary name and
renamed when complete: a crash never leaves a half-written entry. Location: $TL_HUB_CACHE/images (default
~/.cache/tl_hub/images).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from tl_hub.config import PreprocessConfig, cache_root
from tl_hub.data.images import load_image
from tl_hub.data.preprocess import decoded_side, preprocess_image
from tl_hub.progress import Progress

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the file layout or the decoding changes: old entries are then never read
CHUNK = 64  # images per decoding task
PARALLEL_FROM = 256  # fewer images decode faster in this process than a pool starts


def cache_dir() -> Path:
    return cache_root() / "images"


def store_key(ds: datasets.Dataset, image_column: str, preprocess: PreprocessConfig, side: int) -> str:
    """A key that changes with anything that changes the stored pixels."""
    h = hashlib.sha256()
    settings = [FORMAT, ds._fingerprint, len(ds), image_column, preprocess.pixel_settings(), side]
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:32]


class ImageStore:
    """A split's uint8 images (N, C, S, S) in a cache file, indexed like a tensor: `store[indices]` reads
    those images (an int, a slice, or a sequence of ints) and returns a uint8 tensor."""

    ndim = 4

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / "meta.json").read_text())
        self.item_shape: tuple[int, int, int] = tuple(meta["shape"])
        self.digest: str = meta["digest"]  # of the stored pixels, image by image, in order
        self.rows = np.load(self.directory / "rows.npy")  # the file row of each readable image
        self._item_bytes = int(np.prod(self.item_shape))
        self._fd: int | None = None
        self._pid = -1

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), *self.item_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | slice | Any) -> torch.Tensor:
        if isinstance(key, int | np.integer):
            return self.read([int(key)])[0]
        if isinstance(key, slice):
            return self.read(range(*key.indices(len(self))))
        return self.read(key)

    def read(self, indices: Any) -> torch.Tensor:
        """The images at `indices`, in that order, as one uint8 tensor (len(indices), C, S, S)."""
        rows = self.rows[np.asarray(indices, dtype=np.int64).reshape(-1)]
        out = np.empty((len(rows), self._item_bytes), dtype=np.uint8)
        fd = self._file()
        order = np.argsort(rows, kind="stable")  # in file order: sequential reads where rows are adjacent
        # One read per run of images adjacent both in the file and in `out`, straight into `out`.
        file_rows = rows[order]
        breaks = np.flatnonzero((np.diff(file_rows) != 1) | (np.diff(order) != 1)) + 1
        for start, end in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            first = int(order[start])
            target = memoryview(out[first : first + end - start]).cast("B")
            _pread_all(fd, target, int(file_rows[start]) * self._item_bytes)
        return torch.from_numpy(out.reshape(len(rows), *self.item_shape))

    def _file(self) -> int:
        """This process's descriptor of the image file (DataLoader workers open their own)."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.directory / "images.u8", os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def _pread_all(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        n = os.preadv(fd, [buffer[done:]], offset + done)
        if n == 0:
            raise OSError(f"image cache file ends early at byte {offset + done}: delete {cache_dir()}")
        done += n


def memory_budget() -> int | None:
    """Bytes of memory this process could still fill: what the kernel reports available, capped by the
    memory limit of the process's cgroup (a container's, a job scheduler's); None where nothing says."""
    budgets = []
    try:
        available = re.search(r"MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        if available:
            budgets.append(int(available[1]) * 1024)
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            limit = Path("/sys/fs/cgroup", path.lstrip("/"), "memory.max")
        elif "memory" in controllers.split(","):
            limit = Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.limit_in_bytes")
        else:
            continue
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # v2 writes "max" for no limit
            budgets.append(int(text))
    return min(budgets, default=None)


class StoreBatch(NamedTuple):
    """A batch read whole from an ImageStore: nothing left to collate."""

    images: torch.Tensor
    labels: torch.Tensor


class StoreDataset(Dataset):
    """(image, label) pairs from an ImageStore; a DataLoader's batch is one `__getitems__` call, so the
    batch is read from the file at once, into the tensor the loader yields (with `collate`)."""

    def __init__(self, store: ImageStore, labels: torch.Tensor):
        self.store, self.labels = store, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> StoreBatch:
        return StoreBatch(self.store.read(indices), self.labels[indices])


def collate(batch: StoreBatch | list) -> list:
    """A DataLoader's collate_fn: a StoreBatch as it is (stacking its images again would copy them),
    anything else as PyTorch's default does."""
    if isinstance(batch, StoreBatch):
        return [batch.images, batch.labels]
    return default_collate(batch)


# -- building ----------------------------------------------------------------------------------------------

_job: dict[str, Any] = {}  # what a decoding worker reads: set in the parent before the pool forks


def _decode_chunk(bounds: tuple[int, int]) -> tuple[int, list[bool], list[bytes], list[str]]:
    """Decode rows [start, end) into the image file; returns which were readable, their digests, and why
    the others were not (logged by the parent: a worker's log records would not reach its handlers)."""
    start, end = bounds
    ds, column, preprocess, side, path = (_job[k] for k in ("ds", "column", "preprocess", "side", "path"))
    item = preprocess.channels * side * side
    ok, digests, errors = [], [], []
    block = np.zeros((end - start, item), dtype=np.uint8)
    for i, raw in enumerate(ds[start:end][column]):
        try:
            image = load_image(raw, draft=decoded_side(preprocess))
            pixels = preprocess_image(image, preprocess, side).numpy().reshape(-1)
        except Exception as e:  # an unreadable file: skipped and counted, as in memory
            name = raw.get("path") if isinstance(raw, dict) else None
            errors.append(f"{name or '?'} (row {start + i}): {e}")
            ok.append(False)
            digests.append(b"")
            continue
        block[i] = pixels
        ok.append(True)
        digests.append(hashlib.sha256(pixels.tobytes()).digest())
    fd = os.open(path, os.O_WRONLY)
    try:
        view, done = memoryview(block).cast("B"), 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], start * item + done)
    finally:
        os.close(fd)
    return start, ok, digests, errors


def init_decoder() -> None:
    """A decoding worker process's set-up."""
    torch.set_num_threads(1)  # one image per core: the pool is the parallelism


def decode_workers() -> int:
    """Processes that decode: every core this process may use, up to 16."""
    return max(1, min(16, len(os.sched_getaffinity(0))))


def build_store(
    ds: datasets.Dataset, image_column: str, preprocess: PreprocessConfig, side: int, desc: str
) -> ImageStore:
    """The ImageStore of `ds`'s images at storage side `side`: from the cache, or decoded and cached."""
    final = cache_dir() / store_key(ds, image_column, preprocess, side)
    if (final / "meta.json").exists():
        logger.info("%s: image cache hit (%s, %d images)", desc, final.name, len(ds))
        return ImageStore(final)
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _decode_into(tmp, ds, image_column, preprocess, side, desc)
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same entry first: read that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImageStore(final)


def _decode_into(
    directory: Path, ds: datasets.Dataset, column: str, preprocess: PreprocessConfig, side: int, desc: str
) -> None:
    n = len(ds)
    item = preprocess.channels * side * side
    path = directory / "images.u8"
    with open(path, "wb") as f:
        f.truncate(n * item)  # sparse until written
    _job.update(
        ds=ds.cast_column(column, datasets.Image(decode=False)),
        column=column,
        preprocess=preprocess,
        side=side,
        path=path,
    )
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    workers = decode_workers() if n >= PARALLEL_FROM else 1
    ok = np.zeros(n, dtype=bool)
    digests: list[bytes] = [b""] * n
    start = time.perf_counter()
    # fork: the workers inherit the dataset (memory-mapped Arrow) instead of pickling it
    pool = multiprocessing.get_context("fork").Pool(workers, init_decoder) if workers > 1 else None
    try:
        with Progress(total=n, desc=f"decoding {desc} to disk", unit="img", leave=False) as bar:
            results = pool.imap_unordered(_decode_chunk, chunks) if pool else map(_decode_chunk, chunks)
            for first, chunk_ok, chunk_digests, errors in results:
                for error in errors:
                    logger.warning("skipping unreadable image %s in %s", error, desc)
                ok[first : first + len(chunk_ok)] = chunk_ok
                digests[first : first + len(chunk_ok)] = chunk_digests
                bar.update(len(chunk_ok))
    finally:
        if pool is not None:
            pool.terminate()
        _job.clear()
    seconds = time.perf_counter() - start
    rows = np.flatnonzero(ok)
    np.save(directory / "rows.npy", rows)
    digest = hashlib.sha256(b"".join(digests[i] for i in rows)).hexdigest()
    meta = {"shape": [preprocess.channels, side, side], "images": len(rows), "digest": digest}
    (directory / "meta.json").write_text(json.dumps(meta))  # written last: the entry's completion mark
    logger.info(
        "%s: %d images decoded to the image cache in %.1fs (%.0f images/s, %d processes)",
        desc,
        n,
        seconds,
        n / max(seconds, 1e-9),
        workers,
    )
