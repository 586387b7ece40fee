"""Real-world photo files: odd modes are converted, broken or oversized files are skipped and counted."""

import io
import logging
import re

import datasets
import numpy as np
import pytest
from PIL import Image

from tl_hub.config import PreprocessConfig
from tl_hub.data.loading import decode_split

VGG_LIKE = PreprocessConfig(
    input_size=48, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    jpeg = encoded(rgb, "JPEG")
    rotated = rgb.copy()
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees when shown
    bomb = Image.new("1", (14_000, 14_000))  # 196 megapixels in a few KB: over PIL's decompression-bomb limit
    return [
        ("photo.jpg", jpeg),
        ("cmyk.jpg", encoded(rgb.convert("CMYK"), "JPEG")),
        ("gray.png", encoded(rgb.convert("L"), "PNG")),
        ("palette.png", encoded(rgb.convert("P"), "PNG")),
        ("rgba.png", encoded(rgb.convert("RGBA"), "PNG")),
        (
            "sixteen_bit.png",
            encoded(Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)), "PNG"),
        ),
        ("tiny.png", encoded(rgb.resize((1, 1)), "PNG")),
        ("animated.gif", encoded(rgb.convert("P"), "GIF", save_all=True, append_images=[rgb.convert("P")])),
        ("exif_rotated.jpg", encoded(rotated, "JPEG", exif=exif)),
        ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        ("not_an_image.jpg", b"<html>404 Not Found</html>"),
        ("empty.jpg", b""),
        ("bomb.png", encoded(bomb, "PNG")),
    ]


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
    from tl_hub.transforms import load_image, preprocess_image

    raw = dict(photos)
    wide = PreprocessConfig(input_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    upright = preprocess_image(load_image(raw["exif_rotated.jpg"]), wide)
    plain = preprocess_image(load_image(raw["photo.jpg"]), wide)
    assert upright.shape == plain.shape  # both squashed to 16x16, but the content is rotated
    assert not np.array_equal(upright.numpy(), plain.numpy())
