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
    """cnn-synthetic (README command (a)) is cnn-gtsrb's network and setup on renders, for fewer epochs."""
    from tl_hub.recipes import get_recipe

    real, rendered = get_recipe("cnn-gtsrb").config, get_recipe("cnn-synthetic").config
    assert rendered.data.dataset == "synthetic" and rendered.train.epochs == 5
    assert rendered.recipe == "cnn-synthetic"
    same = real.replace({"data.dataset": "synthetic", "train.epochs": 5})
    assert dataclasses.replace(same, recipe="cnn-synthetic") == rendered
