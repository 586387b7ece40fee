"""Real-world photo files: odd modes are converted, broken or oversized files are skipped and counted."""

import logging
import re

import datasets
import numpy as np
import pytest

from tl_hub.config import PreprocessConfig
from tl_hub.data.loading import decode_split

VGG_LIKE = PreprocessConfig(
    input_size=48, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


def test_every_readable_photo_is_used_and_every_broken_one_skipped_with_a_count(
    photos: list[tuple[str, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ds = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": b, "path": name} for name, b in photos],
            "label": [i % 2 for i in range(len(photos))],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])}
        ),
    )
    split, skipped = decode_split(ds, "image", "label", VGG_LIKE, "train")
    assert skipped == 4  # truncated, not an image, empty, decompression bomb
    assert len(split) == len(photos) - 4
    assert split.images.shape[1:] == (3, 48, 48)
    for name in ("truncated.jpg", "not_an_image.jpg", "empty.jpg", "bomb.png"):
        assert name in caplog.text
    assert re.search(r"skipped 4 unreadable image\(s\) of 13 in train", caplog.text)


def test_exif_orientation_is_applied(photos: list[tuple[str, bytes]]) -> None:
    from tl_hub.data.images import load_image
    from tl_hub.data.preprocess import preprocess_image

    raw = dict(photos)
    wide = PreprocessConfig(input_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    upright = preprocess_image(load_image(raw["exif_rotated.jpg"]), wide)
    plain = preprocess_image(load_image(raw["photo.jpg"]), wide)
    assert upright.shape == plain.shape  # both squashed to 16x16, but the content is rotated
    assert not np.array_equal(upright.numpy(), plain.numpy())
