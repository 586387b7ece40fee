"""The cnn-gtsrb recipe end to end on tiny rendered signs: what LeNet-5 users get, SignCNN users get."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tl_hub import Predictor
from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.synthetic import render_sign

from .conftest import ROOT
from .test_space import load_app


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cnn") / "cnn-gtsrb"
    args = ["--recipe", "cnn-gtsrb", "--dataset", "synthetic", "--synthetic-per-class", "6", "--epochs", "2"]
    train = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, "--output-dir", str(out)]
    subprocess.run(train, check=True, capture_output=True, cwd=ROOT)
    return out


@pytest.mark.slow
def test_the_release_is_a_colour_signcnn_with_its_card(run_dir: Path) -> None:
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["architecture"] == "signcnn" and config["num_classes"] == 43
    assert len(config["preprocess"]["mean"]) == 3 and config["preprocess"]["equalize"] == "clahe"
    assert config["model_args"]["widths"] == [32, 64, 128]
    card = (run_dir / "model" / "README.md").read_text()
    assert "cnn-gtsrb" in card and "Batch normalization" in card


@pytest.mark.slow
def test_predictor_and_the_space_serve_it(run_dir: Path, tmp_path: Path) -> None:
    predictor = Predictor.from_pretrained(run_dir / "model")
    top = predictor(render_sign(14, np.random.default_rng(0), 64))
    assert len(top) == 5 and set(top) <= set(GTSRB_CLASS_NAMES)
    assert abs(sum(predictor(render_sign(1, np.random.default_rng(1), 48), top_k=43).values()) - 1) < 1e-5
    app = load_app()
    assert app.local_release("sign", roots=(run_dir.parent,)) == run_dir / "model"


def test_the_quickstart_recipe_is_cnn_gtsrb_on_rendered_signs() -> None:
    """cnn-synthetic (README command (a)) is cnn-gtsrb's network and setup on renders, for fewer epochs,
    channels-last, predicting on test-time views."""
    from tl_hub.recipes import SIGN_VIEWS, get_recipe

    real, rendered = get_recipe("cnn-gtsrb").config, get_recipe("cnn-synthetic").config
    assert rendered.data.dataset == "synthetic" and rendered.train.epochs == 5
    assert rendered.recipe == "cnn-synthetic" and rendered.train.channels_last
    assert rendered.preprocess.tta_scales == SIGN_VIEWS == (0.8, 0.9, 1.1, 1.2)
    assert not real.preprocess.tta_scales  # the real-data recipes predict on the image alone
    same = real.replace(
        {
            "data.dataset": "synthetic",
            "train.epochs": 5,
            "train.channels_last": True,
            "preprocess.tta_scales": SIGN_VIEWS,
        }
    )
    assert dataclasses.replace(same, recipe="cnn-synthetic") == rendered


def test_the_longer_rendered_recipe_is_the_quickstart_on_more_renders_for_longer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cnn-rendered differs from the quickstart's cnn-synthetic only in how many renders it draws and how
    long it trains; it builds, trains and releases under its own name."""
    from tl_hub.accelerator import make_accelerator
    from tl_hub.recipes import get_recipe
    from tl_hub.training.trainer import train

    quick, longer = get_recipe("cnn-synthetic").config, get_recipe("cnn-rendered").config
    assert longer.data.synthetic_per_class > quick.data.synthetic_per_class
    assert longer.train.epochs > quick.train.epochs
    same = quick.replace(
        {"data.synthetic_per_class": longer.data.synthetic_per_class, "train.epochs": longer.train.epochs}
    )
    assert dataclasses.replace(same, recipe="cnn-rendered") == longer

    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    run = longer.replace({"data.synthetic_per_class": 2, "train.epochs": 1, "train.batch_size": 32})
    metrics = train(run, tmp_path / "run", make_accelerator())
    assert 0 <= metrics["validation"]["accuracy"] <= 1
    model_dir = tmp_path / "run" / "model"
    assert json.loads((model_dir / "config.json").read_text())["architecture"] == "signcnn"
    assert "cnn-rendered" in (model_dir / "README.md").read_text()
    assert len(Predictor.from_pretrained(model_dir)(render_sign(1, np.random.default_rng(0), 32))) == 5


def test_the_fast_recipe_builds_trains_and_releases_a_small_channels_last_signcnn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cnn-gtsrb-fast: cnn-gtsrb's setup with a half-width SignCNN, a short schedule and channels-last."""
    from safetensors.torch import load_file

    from tl_hub.accelerator import make_accelerator
    from tl_hub.recipes import get_recipe
    from tl_hub.training.trainer import train

    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    fast, full = get_recipe("cnn-gtsrb-fast").config, get_recipe("cnn-gtsrb").config
    assert (fast.preprocess, fast.aug, fast.data) == (full.preprocess, full.aug, full.data)
    assert fast.train.channels_last and not full.train.channels_last and fast.train.epochs < full.train.epochs
    run = fast.replace(
        {
            "data.dataset": "synthetic",
            "data.synthetic_per_class": 2,
            "train.epochs": 1,
            "train.batch_size": 32,
        }
    )
    metrics = train(run, tmp_path / "run", make_accelerator())
    assert 0 <= metrics["validation"]["accuracy"] <= 1
    model_dir = tmp_path / "run" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architecture"] == "signcnn_small" and config["model_args"]["widths"] == [16, 32, 64]
    assert load_file(model_dir / "model.safetensors")["features.0.weight"].shape == (16, 3, 3, 3)
    predictor = Predictor.from_pretrained(model_dir)
    assert len(predictor(render_sign(14, np.random.default_rng(0), 64), top_k=43)) == 43
    assert "cnn-gtsrb-fast" in (model_dir / "README.md").read_text()


@pytest.mark.slow
def test_channels_last_training_gives_the_weights_of_the_default_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--recipe cnn-gtsrb-fast trains channels-last: the same run in the default layout ends at the same
    weights, up to float rounding."""
    import torch
    from safetensors.torch import load_file

    from tl_hub.accelerator import make_accelerator
    from tl_hub.recipes import get_recipe
    from tl_hub.training.trainer import train

    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    run = get_recipe("cnn-gtsrb-fast").config.replace(
        {
            "data.dataset": "synthetic",
            "data.synthetic_per_class": 2,
            "train.epochs": 1,
            "train.batch_size": 43,
        }
    )
    weights = {}
    for layout in (True, False):
        train(run.replace({"train.channels_last": layout}), tmp_path / str(layout), make_accelerator())
        weights[layout] = load_file(tmp_path / str(layout) / "model" / "model.safetensors")
    assert weights[True].keys() == weights[False].keys()
    # Another layout ran (oneDNN's kernels round differently), to the same weights within rounding. Adam
    # turns a rounding-sized change of a near-zero gradient into a step of the learning rate's size, so a few
    # weights of a tensor may differ by ~lr: biases two steps from zero (BatchNorm's, 16-256 of them) move by
    # up to a quarter of their small norm, depending on the renders. Every weight tensor stays within 5% and
    # the model as a whole within 1% (a wrong layout: ~100%).
    assert any(not torch.equal(value, weights[False][name]) for name, value in weights[True].items())
    names = [n for n, v in weights[False].items() if v.is_floating_point() and v.norm() > 0]
    for name in (n for n in names if not n.endswith("bias")):
        moved = (weights[True][name] - weights[False][name]).norm() / weights[False][name].norm()
        assert moved < 5e-2, (name, moved.item())
    ours = torch.cat([weights[True][n].flatten() for n in names])
    theirs = torch.cat([weights[False][n].flatten() for n in names])
    assert (ours - theirs).norm() / theirs.norm() < 1e-2
