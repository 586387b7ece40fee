"""Predictor's fast path (torch.compile) and its Grad-CAM explanation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tl_hub.data.synthetic import render_sign
from tl_hub.inference.explain import grad_cam
from tl_hub.inference.predictor import Predictor


class TwoHalves(nn.Module):
    """Channel 0 sees the image's right half, channel 1 its left half; class c is channel c's mean."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        right = torch.zeros_like(x[:, :1])
        right[..., x.shape[-1] // 2 :] = 1
        return torch.cat([x[:, :1] * right, x[:, :1] * (1 - right)], dim=1)  # (B, 2, H, W)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=(2, 3))  # (B, 2)


def test_grad_cam_lights_up_where_the_evidence_for_the_class_is() -> None:
    x = torch.ones(1, 1, 8, 8)
    x[..., :4] = 2.0  # the left half is brighter: class 1 (left) scores higher
    cam, index = grad_cam(TwoHalves(), x)
    assert index == 1
    assert torch.all(cam[:, :4] == 1) and torch.all(cam[:, 4:] == 0)
    cam, index = grad_cam(TwoHalves(), x, class_index=0)
    assert index == 0
    assert torch.all(cam[:, :4] == 0) and torch.all(cam[:, 4:] == 1)


def test_explain_overlays_the_heatmap_on_the_region_the_model_saw(release: Path) -> None:
    predictor = Predictor.from_pretrained(release)
    sign = render_sign(14, np.random.default_rng(0), 96)
    shown = predictor.explain(sign, size=128)
    assert shown.size == (128, 128) and shown.mode == "RGB"
    # Not the plain image: the colour map is blended in.
    plain = np.asarray(sign.resize((128, 128)), dtype=np.int16)
    assert np.abs(np.asarray(shown, dtype=np.int16) - plain).mean() > 10


@pytest.mark.slow
def test_compiled_predictor_gives_the_eager_logits(release: Path) -> None:
    eager = Predictor.from_pretrained(release)
    compiled = Predictor.from_pretrained(release, compile=True)
    images = [render_sign(c, np.random.default_rng(c), 40) for c in range(4)]
    for image in images:  # batch 1, as the Space calls it
        torch.testing.assert_close(compiled.logits([image]), eager.logits([image]), rtol=1e-5, atol=1e-5)


def test_a_predictor_whose_compile_fails_serves_in_eager_mode(
    release: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_compile(model: nn.Module, **kwargs: object):
        def fail(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    predictor = Predictor.from_pretrained(release, compile=True)
    image = Image.new("RGB", (32, 32), "red")
    with caplog.at_level(logging.WARNING):
        got = predictor(image)
    assert "torch.compile failed (RuntimeError: InvalidCxxCompiler" in caplog.text
    expected = Predictor.from_pretrained(release)(image)
    assert list(got) == list(expected)  # eager, channels_last: equal up to float rounding
    assert list(got.values()) == pytest.approx(list(expected.values()), abs=1e-6)


def test_grad_cam_reads_vgg16_at_its_last_convolution(vgg16_release: Path) -> None:
    from tl_hub.inference.explain import cam_layer

    predictor = Predictor.from_pretrained(vgg16_release)
    model = predictor.model
    name, to_map, from_map = cam_layer(model, "features")
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n.startswith("features.")]
    assert convs[-1] == "features.28" and name == "features.29"  # the ReLU after the last convolution
    assert isinstance(model.get_submodule(name), nn.ReLU)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    x = predictor.inputs([photo])
    with torch.no_grad():
        assert to_map(x).shape == (1, 512, 4, 4)  # 64 / 16: before the last pooling, not 2x2 after it
        torch.testing.assert_close(from_map(to_map(x)), model(x))  # the same network, cut in two
    cam, _ = grad_cam(model, x, base="features")
    assert cam.shape == x.shape[-2:] == (64, 64)  # at the image's (the model's view's) size
    assert float(cam.max()) == 1.0 and float(cam.std()) > 0.05  # not constant
    shown = predictor.explain(photo)
    assert shown.size == (256, 256)  # as the Space shows it


def test_a_model_without_a_sequential_base_is_explained_on_forward_features() -> None:
    from tl_hub.inference.explain import cam_layer

    model = TwoHalves()
    name, to_map, from_map = cam_layer(model, None)
    assert name is None and to_map == model.forward_features and from_map == model.forward_head
