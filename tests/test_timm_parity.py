"""tl_hub's preprocessing equals timm's eval transform, pixel for pixel, on photos of any shape.

Odd sizes are where a rounded resize or crop offset drifts from timm's truncating one; random noise makes a
one-pixel shift show up as a large difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from tl_hub.config import PreprocessConfig
from tl_hub.data.preprocess import model_input, model_view, normalize
from tl_hub.recipes import weights_preprocess
from tl_hub.release.config import timm_pretrained_cfg

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZES = [(640, 427), (427, 640), (500, 375), (333, 517), (225, 225), (1001, 99), (97, 1203)]  # (w, h)
CONFIGS = {
    "bilinear-0.9": PreprocessConfig(
        input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear", crop_pct=0.9
    ),
    "bicubic-0.875": PreprocessConfig(
        input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic", crop_pct=0.875
    ),
    "small-0.875": PreprocessConfig(input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875),
    "squash": PreprocessConfig(input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic"),
}


def _photo(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _timm_transform(cfg: PreprocessConfig, size: int | None = None):
    return timm.data.create_transform(
        input_size=(3, size or cfg.input_size, size or cfg.input_size),
        interpolation=cfg.interpolation,
        mean=cfg.mean,
        std=cfg.std,
        crop_pct=1.0 if cfg.crop_pct is None else cfg.crop_pct,
        crop_mode="squash" if cfg.crop_pct is None else "center",
    )


def _assert_same_inputs(cfg: PreprocessConfig, theirs) -> None:
    """tl_hub's input tensor equals timm's transform's, pixel for pixel, on every photo size."""
    for w, h in SIZES:
        image = _photo(w, h)
        assert torch.equal(model_input([image], cfg)[0], theirs(image)), f"{w}x{h}"


@pytest.fixture(scope="module")
def vgg16() -> torch.nn.Module:
    return timm.create_model("vgg16", pretrained=False)  # only its pretrained_cfg is used: nothing downloads


def test_the_vgg16_recipe_preprocessing_equals_timms_eval_transform(vgg16: torch.nn.Module) -> None:
    ours = weights_preprocess(f"vgg16.{vgg16.pretrained_cfg['tag']}")
    theirs = timm.data.create_transform(**timm.data.resolve_data_config({}, model=vgg16))
    _assert_same_inputs(ours, theirs)


@pytest.mark.parametrize("name", CONFIGS)
def test_preprocessing_equals_timms_eval_transform(name: str) -> None:
    cfg = CONFIGS[name]
    theirs = _timm_transform(cfg)
    _assert_same_inputs(cfg, theirs)


@pytest.mark.parametrize("name", CONFIGS)
def test_a_releases_timm_pretrained_cfg_gives_timm_users_the_same_input(name: str) -> None:
    cfg = CONFIGS[name]
    data_config = timm.data.resolve_data_config({}, pretrained_cfg=timm_pretrained_cfg(cfg, num_classes=2))
    theirs = timm.data.create_transform(**data_config)
    image = _photo(*SIZES[0])
    assert torch.equal(model_input([image], cfg)[0], theirs(image))


@pytest.mark.parametrize("name", ["bilinear-0.9", "squash"])
def test_a_display_size_view_is_timms_transform_at_that_size(name: str) -> None:
    cfg, size = CONFIGS[name], 448  # Grad-CAM overlays: the region the model saw, at display resolution
    theirs = _timm_transform(cfg, size)
    for w, h in SIZES[:3]:
        image = _photo(w, h)
        view = torch.from_numpy(np.asarray(model_view(image, cfg, size)).copy()).permute(2, 0, 1)  # (3, S, S)
        assert torch.equal(normalize(view[None], cfg)[0], theirs(image)), f"{w}x{h}"
