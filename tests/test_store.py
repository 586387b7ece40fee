"""The disk image cache: the pixels memory holds (plus a margin for crops), read by batch, decoded in
parallel, found again by a rerun, and never half-written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from tl_hub.config import AugConfig, PreprocessConfig
from tl_hub.data import loading, store
from tl_hub.data.augment import BatchAugment
from tl_hub.data.loading import decode_split, uses_disk
from tl_hub.data.preprocess import center_view, storage_size
from tl_hub.scoring import image_inputs

from .conftest import encoded
from .test_bad_inputs import TINY, assert_same_weights, killed_and_resumed, run_script_ok
from .test_cli import TRAIN, run_script

# Resized to 30 and stored at 28: a margin of 4 around the 24-pixel view.
PHOTO = PreprocessConfig(input_size=24, crop_pct=0.8, mean=(0.5,) * 3, std=(0.5,) * 3)


def photo_dataset(n: int, broken: tuple[int, ...] = ()) -> datasets.Dataset:
    """`n` JPEG photos of varied sizes, label i % 2, each filled with its label's colour plus noise;
    the rows in `broken` are not images."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        array = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        array[..., 2 * (i % 2)] += 180  # red for label 0, blue for label 1
        data = b"not an image" if i in broken else encoded(Image.fromarray(array), "JPEG", quality=95)
        rows.append({"bytes": data, "path": f"{i}.jpg"})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["r", "b"])})
    return datasets.Dataset.from_dict({"image": rows, "label": [i % 2 for i in range(n)]}, features=features)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "images"


def test_the_disk_cache_holds_what_memory_holds_plus_a_margin(cache: Path) -> None:
    ds = photo_dataset(300)  # past PARALLEL_FROM: decoded by a pool of processes
    assert store.PARALLEL_FROM <= 300
    memory, _ = decode_split(ds, "image", "label", PHOTO, "train")
    disk, skipped = decode_split(ds, "image", "label", PHOTO, "train", disk=True)
    assert skipped == 0 and storage_size(PHOTO) == 28
    assert disk.images.shape == (300, 3, 28, 28) and memory.images.shape == (300, 3, 24, 24)
    everything = disk.images[:]
    assert torch.equal(center_view(everything, 24), memory.images)  # what evaluation sees, pixel for pixel
    assert torch.equal(disk.labels, memory.labels)
    picks = [299, 5, 6, 7, 0, 5]  # any order, runs of neighbours, repeats
    assert torch.equal(disk.images[picks], everything[picks])
    assert torch.equal(disk.images[3], everything[3])


def test_a_rerun_reads_the_cache_and_another_preprocessing_misses_it(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ds = photo_dataset(40)
    first, _ = decode_split(ds, "image", "label", PHOTO, "train", disk=True)
    assert "40 images decoded to the image cache" in caplog.text
    caplog.clear()
    again, _ = decode_split(ds, "image", "label", PHOTO, "train", disk=True)
    assert "image cache hit" in caplog.text and again.fingerprint() == first.fingerprint()
    bigger = PreprocessConfig(input_size=28, crop_pct=0.8, mean=(0.5,) * 3, std=(0.5,) * 3)
    decode_split(ds, "image", "label", bigger, "train", disk=True)
    decode_split(ds.select(range(30)), "image", "label", PHOTO, "train", disk=True)  # other rows
    assert len(list(cache.iterdir())) == 3


def test_unreadable_photos_are_skipped_and_the_labels_stay_with_their_images(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = (0, 7, 150, 299)
    split, skipped = decode_split(photo_dataset(300, broken), "image", "label", PHOTO, "train", disk=True)
    assert skipped == 4 and len(split) == 296 and split.images.shape[0] == 296
    assert "skipped 4 unreadable image(s) of 300 in train" in caplog.text
    assert "150.jpg (row 150)" in caplog.text  # named, though a worker process decoded it
    red_minus_blue = split.images[:].float().mean(dim=(2, 3)) @ torch.tensor([1.0, 0.0, -1.0])
    assert torch.equal((red_minus_blue < 0).long(), split.labels)  # each label beside its own image


def test_a_failed_build_leaves_no_entry_and_the_next_one_succeeds(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._decode_chunk
    calls = []

    def interrupted(bounds: tuple[int, int]):
        calls.append(bounds)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway
        return real(bounds)

    monkeypatch.setattr(store, "_decode_chunk", interrupted)
    ds = photo_dataset(100)
    with pytest.raises(KeyboardInterrupt):
        decode_split(ds, "image", "label", PHOTO, "train", disk=True)
    assert not cache.exists() or not list(cache.iterdir())
    monkeypatch.setattr(store, "_decode_chunk", real)
    split, _ = decode_split(ds, "image", "label", PHOTO, "train", disk=True)
    assert len(split) == 100
    assert [p.name for p in cache.iterdir()] == [store.store_key(ds, "image", PHOTO, 28)]


def test_auto_keeps_signs_in_memory_and_photos_on_disk() -> None:
    signs = PreprocessConfig(input_size=32, grayscale=True, mean=(0.5,), std=(0.5,))
    assert not uses_disk("auto", signs, 50_000)  # 51 MB
    assert uses_disk("auto", signs, 3_000_000)  # 3 GB
    assert uses_disk("auto", PHOTO, 10)  # a margin for random-resized crops
    assert not uses_disk("memory", PHOTO, 10) and uses_disk("disk", signs, 10)


@pytest.mark.slow
def test_memory_beyond_the_machine_is_refused_in_one_line_before_decoding(
    monkeypatch, capsys, tmp_path
) -> None:
    """Decoding into memory more than the machine (or its container's limit) has room for would end in the
    kernel killing the run minutes later, without a word."""
    budget = store.memory_budget()
    assert budget is None or 0 < budget <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    monkeypatch.setattr(loading, "memory_budget", lambda: 100_000)  # 100 KB free
    out = tmp_path / "run"
    code, err = run_script(
        TRAIN, [*TINY, "--image-cache", "memory", "--output-dir", str(out)], monkeypatch, capsys
    )
    assert code == 2 and "decoded images take" in err and "use --image-cache disk (or auto" in err
    assert "Traceback" not in err and not out.exists()
    assert run_script_ok(TRAIN, [*TINY, "--output-dir", str(out)], monkeypatch, capsys)[0] == 0  # auto fits


def test_photo_augmentation_crops_the_whole_stored_image_and_evaluation_its_centre() -> None:
    x = torch.rand(8, 3, 28, 28)
    crops = BatchAugment(AugConfig(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), hflip=True))
    out = crops(x, torch.Generator().manual_seed(0), 24)
    assert out.shape == (8, 3, 24, 24)
    assert torch.equal(out, crops(x, torch.Generator().manual_seed(0), 24))  # a function of the seed
    assert torch.equal(BatchAugment(AugConfig())(x, torch.Generator(), 24), center_view(x, 24))
    # Without crops, geometric augmentation starts from the centre view: the identity is the view.
    flips = BatchAugment(AugConfig(hflip=True))(x, torch.Generator().manual_seed(1), 24)
    view = center_view(x, 24)
    for image, got in zip(view, flips, strict=True):
        assert torch.allclose(got, image, atol=1e-5) or torch.allclose(got, image.flip(-1), atol=1e-5)


def test_training_batches_reuse_one_buffer_and_autograd_guards_it() -> None:
    """Each augmented batch is written over the last one (no page faults for a fresh batch); a backward
    pass through a batch overwritten since is refused rather than silently wrong."""
    prepare = image_inputs(PHOTO, BatchAugment(AugConfig(crop_scale=(0.5, 1.0), hflip=True, brightness=0.2)))
    images = torch.randint(0, 256, (4, 3, storage_size(PHOTO), storage_size(PHOTO)), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    first = prepare(images, generator)
    kept = first.clone()
    conv = torch.nn.Conv2d(3, 2, 3)
    loss = conv(first).sum()
    second = prepare(images, generator)
    assert second.data_ptr() == first.data_ptr() and not torch.equal(second, kept)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    assert prepare(images[:3], generator).shape == (3, 3, PHOTO.input_size, PHOTO.input_size)  # a last batch


def test_saturation_jitter_keeps_greys_and_moves_colours() -> None:
    jitter = BatchAugment(AugConfig(saturation=0.5))
    grey = torch.rand(4, 1, 8, 8).expand(4, 3, 8, 8).contiguous()
    assert torch.allclose(jitter(grey, torch.Generator().manual_seed(0)), grey, atol=1e-6)
    colour = torch.rand(4, 3, 8, 8)
    before = colour.clone()
    assert not torch.allclose(jitter(colour, torch.Generator().manual_seed(0)), colour)
    assert torch.equal(colour, before)  # jittered in place, but on a copy: the caller's batch is untouched


@pytest.mark.slow
def test_training_from_the_disk_cache_equals_training_from_memory(monkeypatch, capsys, tmp_path) -> None:
    """Signs keep no margin: the disk cache holds the very tensors memory does, so the runs are identical."""
    runs = {}
    for where in ("memory", "disk"):
        out = tmp_path / where
        args = [*TINY, "--image-cache", where, "--output-dir", str(out)]
        assert run_script_ok(TRAIN, args, monkeypatch, capsys)[0] == 0
        runs[where] = out
    assert_same_weights(runs["memory"] / "model", runs["disk"] / "model")


@pytest.mark.slow
def test_photo_augmentation_from_the_disk_cache_resumes_bit_identical(
    monkeypatch, capsys, caplog, tmp_path
) -> None:
    caplog.set_level(logging.INFO)
    # timm's tiny test network at 32 pixels, stored at 36: auto picks the disk cache, crops use its margin.
    model = ["--model", "test_efficientnet", "--no-pretrained", "--strategy", "finetune-all"]
    args = [*TINY, *model, "--augment", "timm", "--input-size", "32", "--crop-pct", "0.875"]
    full, cut = killed_and_resumed(args, tmp_path, monkeypatch, capsys)
    # decoded once, by the first run; the resumed one reads the cache
    assert caplog.text.count("decoded to the image cache") == 3 and "image cache hit" in caplog.text
    assert_same_weights(cut / "model", full / "model")


def test_big_jpegs_decode_at_reduced_scale_within_a_grey_level() -> None:
    """libjpeg's reduced-scale decoding (PIL's draft), used for training data only where a JPEG is at least
    twice the size the model's view is cut from, moves the stored pixels by less than a grey level."""
    from tl_hub.data.images import load_image
    from tl_hub.data.preprocess import decoded_side, preprocess_image

    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    smooth = noise.resize((1600, 1200), Image.Resampling.BICUBIC)
    data = encoded(smooth, "JPEG", quality=90)
    need = decoded_side(PHOTO)  # 30
    fast = load_image(data, draft=need)
    assert need <= min(fast.size) < 1200 // 8 * 2  # decoded at 1/8 scale: 200x150
    full = preprocess_image(load_image(data), PHOTO, storage_size(PHOTO))
    reduced = preprocess_image(fast, PHOTO, storage_size(PHOTO))
    assert (full.int() - reduced.int()).abs().float().mean() < 1.0
    small = encoded(smooth.resize((50, 40)), "JPEG")
    assert load_image(small, draft=need).size == (50, 40)  # under twice the need: decoded in full
