"""--streaming: the train split read as a stream, decoded by a pool, the same epoch whatever the pool,
resumable bit for bit, and refused with one line where a stream cannot serve."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from tl_hub.config import DataConfig, PreprocessConfig
from tl_hub.data import streaming
from tl_hub.data.streaming import held_out, prepare_streaming

from .test_bad_inputs import assert_same_weights, killed_and_resumed
from .test_cli import TRAIN, run_script
from .test_store import photo_dataset

PHOTO = PreprocessConfig(input_size=24, crop_pct=0.8, mean=(0.5,) * 3, std=(0.5,) * 3)  # stored at 28


@pytest.fixture(autouse=True)
def no_pause_after_each_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets sleeps 5 s each time a parquet stream ends (a guard for Arrow's reader threads at shutdown):
    in these tests every pass over a stream of a few hundred images would be mostly that pause. What the
    tests check does not depend on it; a user's pass over a real dataset is minutes long."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


@pytest.fixture(scope="module")
def photo_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local parquet dataset of 300 photos, train only, ordered by label (as many Hub datasets are)."""
    root = tmp_path_factory.mktemp("stream")
    ds = photo_dataset(300)
    ds = ds.select(np.argsort(ds["label"], kind="stable"))
    (root / "data").mkdir()
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def epoch_of(split: streaming.StreamSplit, epoch: int, batch_size: int = 32) -> tuple[torch.Tensor, ...]:
    loader = split.loader(batch_size)
    loader.dataset.set_epoch(epoch)
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@pytest.mark.slow
def test_a_stream_yields_every_training_image_once_an_epoch_in_a_seeded_order(
    photo_parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = prepare_streaming(DataConfig(dataset=str(photo_parquet), val_size=30), PHOTO, seed=0)
    train, validation = data.train, data.validation
    assert len(train) + len(validation) == 300  # the carve, by a hash of each image, is skipped in training
    assert 0 < len(validation) < 100 and 0 < validation.labels.float().mean() < 1  # both classes
    images, labels = epoch_of(train, 1)
    assert images.shape == (len(train), 3, 28, 28) and len(labels) == len(train)
    assert torch.equal(labels.sort().values, torch.tensor(sorted(labels.tolist())))
    again = epoch_of(train, 1)
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)  # a function of (seed, epoch)
    assert not torch.equal(epoch_of(train, 2)[1], labels)  # reshuffled every epoch
    monkeypatch.setattr(streaming, "decode_workers", lambda: 1)  # decoded here instead of by a pool
    alone = epoch_of(train, 1)
    assert torch.equal(alone[0], images) and torch.equal(alone[1], labels)
    # each image's label comes with it: red photos are label 0, blue ones label 1
    red_minus_blue = images.float().mean(dim=(2, 3)) @ torch.tensor([1.0, 0.0, -1.0])
    assert torch.equal((red_minus_blue < 0).long(), labels)


def test_the_validation_carve_is_the_same_in_any_order() -> None:
    rng = np.random.default_rng(0)
    images = [{"bytes": rng.bytes(100), "path": None} for _ in range(2000)]
    picked = [held_out(im, 0.1) for im in images]
    assert 150 < sum(picked) < 250
    assert [held_out(im, 0.1) for im in reversed(images)] == picked[::-1]


@pytest.mark.slow
def test_a_streamed_run_resumes_bit_identical(photo_parquet, monkeypatch, capsys, caplog, tmp_path) -> None:
    caplog.set_level(logging.INFO)
    args = ["--dataset", str(photo_parquet), "--streaming", "--val-size", "30", "--batch-size", "32"]
    args += ["--epochs", "2", "--input-size", "24", "--crop-pct", "0.8", "--augment", "timm"]
    args += ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--recipe", "cnn-gtsrb"]
    full, cut = killed_and_resumed(args, tmp_path, monkeypatch, capsys)
    assert "train: streamed" in caplog.text
    assert_same_weights(cut / "model", full / "model")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "synthetic"], "--streaming reads a Hub dataset or a local directory; 'synthetic' is"),
        (["--train-size", "50"], "--train-size 50 draws a sample from the whole split, which --streaming"),
        (
            ["--strategy", "feature-extract", "--init-from", "{release}"],
            "feature-extract caches every image's features, which --streaming never holds: add "
            "--no-feature-cache, or drop --streaming",
        ),
    ],
    ids=["synthetic", "a training sample", "a feature cache"],
)
def test_what_a_stream_cannot_serve_is_refused_in_one_line(
    args, message, photo_parquet, release, monkeypatch, capsys, tmp_path
) -> None:
    out = tmp_path / "run"
    args = [a.format(release=release) for a in args]
    base = ["--dataset", str(photo_parquet), "--streaming", "--epochs", "1", "--output-dir", str(out)]
    code, err = run_script(TRAIN, [*base, *args], monkeypatch, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_streaming_needs_class_names(tmp_path: Path, monkeypatch, capsys) -> None:
    ds = photo_dataset(20).cast_column("label", datasets.Value("int64"))
    (tmp_path / "data" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "data" / "data" / "train.parquet"))
    args = ["--dataset", str(tmp_path / "data"), "--streaming", "--output-dir", str(tmp_path / "run")]
    code, err = run_script(TRAIN, args, monkeypatch, capsys)
    assert code == 2 and "--streaming needs the class names up front: column 'label'" in err


def write_splits(root: Path, train: datasets.Dataset, files: int) -> Path:
    """A local parquet dataset: `train` in `files` files of unequal sizes, and a validation split."""
    (root / "data").mkdir(parents=True)
    bounds = np.linspace(0, len(train), files + 1).astype(int)
    bounds[1:-1] += 7  # files of different sizes: shards need not be even
    for i in range(files):
        part = train.select(range(bounds[i], bounds[i + 1]))
        part.to_parquet(str(root / "data" / f"train-{i:05d}-of-{files:05d}.parquet"))
    photo_dataset(10).to_parquet(str(root / "data" / "validation-00000-of-00001.parquet"))
    return root


@pytest.fixture
def one_process_group(tmp_path: Path):
    """torch.distributed with this process alone: the processes' agreement before each batch is its own."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1
    )
    yield
    torch.distributed.destroy_process_group()


def image_keys(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


@pytest.mark.slow
@pytest.mark.parametrize("files", [1, 2], ids=["rows split", "files split"])
def test_each_process_reads_its_own_shard_and_no_image_twice(files, tmp_path, one_process_group) -> None:
    root = write_splits(tmp_path / "stream", photo_dataset(120), files)
    data = prepare_streaming(DataConfig(dataset=str(root), val_size=10), PHOTO, seed=0)
    everything = image_keys(epoch_of(data.train, 1)[0])
    assert len(set(everything)) == len(everything) == 120
    shards = []
    for process in (0, 1):
        loader = data.train.loader(8, process, 2)  # half of a global batch of 16
        loader.dataset.set_epoch(1)
        shards.append(image_keys(torch.cat([images for images, _ in loader])))
    # one file each, or every other row: no image read twice, none that is not the epoch's
    assert set(shards[0]).isdisjoint(shards[1]) and set(shards[0] + shards[1]) <= set(everything)
    if files == 2:
        # files of 53 and 67 images; an epoch is 8 steps of 8 (len), so the larger leaves 3 unread
        assert sorted(map(len, shards)) == [53, 64]
    else:
        assert sorted(shards[0] + shards[1]) == sorted(everything)  # every other row: all of them
