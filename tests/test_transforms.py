import io

import numpy as np
import pytest
import torch
from PIL import Image

from tl_hub.config import AugConfig, PreprocessConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.data.images import load_image
from tl_hub.data.preprocess import normalize, preprocess_image

GRAY = PreprocessConfig(input_size=32, grayscale=True, equalize="clahe", mean=(0.5,), std=(0.2887,))
RGB = PreprocessConfig(input_size=24, crop_pct=0.875)


def _rgb(h: int = 40, w: int = 56, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_every_image_mode_becomes_the_model_input_shape(mode: str) -> None:
    image = (
        _rgb().convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.random.default_rng(0).integers(0, 65535, (40, 56), dtype=np.uint16))
    )
    for cfg, channels, size in ((GRAY, 1, 32), (RGB, 3, 24)):
        out = preprocess_image(image, cfg)
        assert out.dtype == torch.uint8
        assert out.shape == (channels, size, size)


def test_sixteen_bit_images_keep_their_contrast() -> None:
    ramp = np.tile(np.linspace(0, 4000, 32, dtype=np.uint16), (32, 1))  # a dim 16-bit ramp
    out = preprocess_image(Image.fromarray(ramp), PreprocessConfig(input_size=32))
    assert out.max() == 255 and out.min() == 0


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    out = preprocess_image(image, PreprocessConfig(input_size=10))
    assert torch.all(out == 255)


@pytest.mark.parametrize("method", ["global", "clahe"])
def test_equalization_spreads_a_dark_image_over_a_wide_range(method: str) -> None:
    dark = Image.fromarray(np.random.default_rng(0).integers(0, 40, (32, 32), dtype=np.uint8)).convert("RGB")
    out = preprocess_image(dark, PreprocessConfig(grayscale=True, equalize=method, mean=(0.5,), std=(0.5,)))
    assert int(out.max()) - int(out.min()) > 3 * 40  # at least triple the original range


def test_colour_equalization_keeps_hue() -> None:
    image = Image.new("RGB", (32, 32), (60, 10, 10))  # dark red
    image.paste((20, 4, 4), (0, 0, 16, 32))
    out = preprocess_image(image, PreprocessConfig(equalize="clahe"))
    assert torch.all(out[0] >= out[1]) and torch.all(out[0] >= out[2])  # still red, not grey


def test_center_crop_follows_crop_pct() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 100))  # a white stripe at the far left is cropped away
    out = preprocess_image(image, RGB)
    assert out.shape == (3, 24, 24) and out.max() == 0


def test_load_image_accepts_paths_bytes_arrays_and_dataset_dicts(tmp_path) -> None:
    image = _rgb()
    path = tmp_path / "x.png"
    image.save(path)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    arrays = [
        np.asarray(load_image(obj).convert("RGB"))
        for obj in (
            image,
            str(path),
            path,
            buf.getvalue(),
            np.asarray(image),
            {"bytes": buf.getvalue(), "path": None},
        )
    ]
    for a in arrays[1:]:
        assert np.array_equal(a, arrays[0])


def test_normalize_uses_mean_and_std() -> None:
    batch = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    assert torch.allclose(normalize(batch, GRAY), torch.full((2, 1, 4, 4), 0.5 / 0.2887))


def test_augmentation_is_reproducible_from_the_generator_and_varies_per_image() -> None:
    aug = BatchAugment(AugConfig(rotation=15, blur_prob=0.5))
    x = preprocess_image(_rgb(32, 32), GRAY).float().div(255).expand(8, -1, -1, -1).clone()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each image draws its own angle


def test_disabled_augmentation_is_the_identity() -> None:
    x = torch.rand(4, 1, 32, 32)
    assert torch.equal(BatchAugment(AugConfig())(x, torch.Generator()), x)


def test_blur_applies_only_where_drawn_and_preserves_brightness() -> None:
    x = torch.rand(6, 3, 16, 16)
    apply = torch.tensor([True, False, True, False, True, False])
    y = BatchAugment._blur(x, torch.full((6,), 1.0), apply)
    assert torch.allclose(y[~apply], x[~apply])
    assert not torch.allclose(y[apply], x[apply])
    assert y[apply].std() < x[apply].std()
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.03)


def test_no_horizontal_flip_unless_asked() -> None:
    # An image that is bright on its left half must stay bright on the left with rotation only.
    x = torch.zeros(16, 1, 32, 32)
    x[..., :16] = 1.0
    y = BatchAugment(AugConfig(rotation=15))(x, torch.Generator().manual_seed(0))
    assert torch.all(y[..., 4:12].mean(dim=(1, 2, 3)) > y[..., 20:28].mean(dim=(1, 2, 3)))
    flipped = BatchAugment(AugConfig(hflip=True))(x, torch.Generator().manual_seed(0))
    assert (flipped[..., :16].mean(dim=(1, 2, 3)) < 0.5).any()


def test_brightness_and_contrast_jitter_each_image_within_their_range() -> None:
    x = torch.rand(64, 3, 8, 8) * 0.5 + 0.25  # room to brighten and darken without clipping
    y = BatchAugment(AugConfig(brightness=0.3))(x, torch.Generator().manual_seed(0))
    ratio = y.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))
    assert ratio.min() >= 0.7 - 1e-6 and ratio.max() <= 1.3 + 1e-6 and ratio.std() > 0.05
    assert torch.allclose(y / x, ratio[:, None, None, None].expand_as(x), atol=1e-5)  # one factor per image
    z = BatchAugment(AugConfig(contrast=0.3))(x, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)  # the mean stays
    spread = z.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert spread.min() >= 0.7 - 1e-4 and spread.max() <= 1.3 + 1e-4 and spread.std() > 0.05
    bright = BatchAugment(AugConfig(brightness=0.9, contrast=0.9))(torch.ones(8, 3, 4, 4), torch.Generator())
    assert bright.max() <= 1.0 and bright.min() >= 0.0


def test_photo_crops_are_boxes_of_whole_pixels_cut_from_anywhere_and_flipped() -> None:
    """A quarter-area square crop of a 32-pixel image is 16 pixels: cut out as is, no resampling."""
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    aug = BatchAugment(AugConfig(crop_scale=(0.25, 0.25), hflip=True))
    y = (aug(x, torch.Generator().manual_seed(0), 16) * 255).round().to(torch.uint8)
    corners, flips = set(), 0
    for image, got in zip(x, y, strict=True):
        windows = image.unfold(1, 16, 1).unfold(2, 16, 1)  # (C, 17, 17, 16, 16): every 16x16 box
        matches = [
            (top, left, flipped)
            for top in range(17)
            for left in range(17)
            for flipped in (False, True)
            if torch.equal(windows[:, top, left].flip(-1) if flipped else windows[:, top, left], got)
        ]
        assert matches
        corners.add(matches[0][:2])
        flips += matches[0][2]
    assert len(corners) > 8 and 0 < flips < 16  # crops from many places, about half of them mirrored


def test_photo_crops_resize_uint8_as_float_does() -> None:
    """On a CPU uint8 batches are resized in uint8 (torch's fast kernel, fixed-point weights), elsewhere in
    float: the two differ by at most one grey level."""
    x = torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8)
    aug = BatchAugment(AugConfig(crop_scale=(0.3, 1.0), crop_ratio=(3 / 4, 4 / 3), hflip=True))
    from_uint8 = aug(x, torch.Generator().manual_seed(3), 24)
    from_float = aug(x.float() / 255, torch.Generator().manual_seed(3), 24)
    difference = (from_uint8 - from_float).abs()
    assert difference.max() <= 1.01 / 255 and difference.mean() < 0.3 / 255


def test_colour_jitter_is_contrast_then_brightness_then_saturation_then_normalization() -> None:
    """The per-image colour map composes the three jitters and the normalization; where nothing clips it
    equals applying them one after the other."""
    x = torch.rand(16, 3, 8, 8) * 0.2 + 0.4  # no jitter of at most 0.2 can leave [0, 1]
    cfg = AugConfig(brightness=0.2, contrast=0.2, saturation=0.2)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = BatchAugment(cfg)(x, torch.Generator().manual_seed(5), None, mean, std)
    g = torch.Generator().manual_seed(5)
    contrast, brightness, saturation = (0.8 + 0.4 * torch.rand(16, generator=g) for _ in range(3))
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    y = (x - image_mean) * contrast.view(-1, 1, 1, 1) + image_mean
    y = y * brightness.view(-1, 1, 1, 1)
    luma = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
    y = (y - luma) * saturation.view(-1, 1, 1, 1) + luma
    expected = (y - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(got, expected, atol=1e-5)
    # Clamped once, to the normalized image of [0, 1]
    bright = BatchAugment(AugConfig(brightness=0.9))(
        torch.ones(8, 3, 4, 4), torch.Generator(), None, mean, std
    )
    assert torch.allclose(bright.amax(dim=(0, 2, 3)), (1 - torch.tensor(mean)) / torch.tensor(std))
