"""Test-time views (--tta-scales): what a view is, how predictions average over them, and that training's
scoring, evaluate.py and Predictor all predict the same way from a release that asks for them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pytest
import torch
from torch import nn

from tl_hub.config import PreprocessConfig
from tl_hub.data.views import TestTimeViews, averaged_views, field_of_view, with_views
from tl_hub.errors import ConfigError

from .test_bad_inputs import run_script_ok
from .test_cli import EVALUATE, TRAIN, run_script


def _dot(side: int = 16) -> torch.Tensor:
    x = torch.zeros(1, 1, side, side)
    x[..., side // 2 - 2 : side // 2 + 2, side // 2 - 2 : side // 2 + 2] = 1.0
    return x


def test_a_view_zooms_about_the_centre_and_keeps_layout_and_dtype() -> None:
    x = _dot()
    torch.testing.assert_close(field_of_view(x, 1.0), x)  # scale 1 is the image itself
    closer, wider = field_of_view(x, 0.5), field_of_view(x, 2.0)
    assert closer.sum() > 3 * x.sum() > 3 * wider.sum()  # the centre enlarged, or shrunk
    assert closer[..., 8, 8] == 1.0 and closer[..., 0, 0] == 0.0  # still centred
    torch.testing.assert_close(
        field_of_view(torch.full((2, 3, 8, 8), 0.7), 1.5), torch.full((2, 3, 8, 8), 0.7)
    )
    rgb = torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    view = field_of_view(rgb, 0.9)
    assert view.is_contiguous(memory_format=torch.channels_last) and view.dtype == rgb.dtype


def test_predictions_average_the_softmax_over_the_views() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 5)).eval()
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(averaged_views(model, x, ()), model(x))
        expected = sum(model(field_of_view(x, s)).softmax(1) for s in (1.0, 0.8, 1.25)) / 3
        got = averaged_views(model, x, (0.8, 1.25))
        torch.testing.assert_close(got.softmax(1), expected)  # log-probabilities of the mean
        torch.testing.assert_close(TestTimeViews(model, (0.8, 1.25))(x), got)
    assert with_views(model, PreprocessConfig()) is model
    assert isinstance(with_views(model, PreprocessConfig(tta_scales=(0.9,))), TestTimeViews)


def test_the_flag_reads_numbers_or_none() -> None:
    from tl_hub.flags import scales

    assert scales("0.8, 1.2") == (0.8, 1.2) and scales("none") == () and scales("None") == ()


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        ((1.0,), "tta_scales=(1.0,) is invalid"),
        ((0.9, 3.0), "at most 16 scales from 0.5 to 2, none of them 1"),
        ((0.9,) * 17, "tta_scales="),
    ],
)
def test_views_out_of_range_are_refused(scales: tuple[float, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PreprocessConfig(tta_scales=scales)


def _signs_parquet(root: Path, n: int = 43) -> Path:
    """`n` rendered signs (one per class in turn) as a Hub-layout parquet dataset with GTSRB's class names."""
    from PIL import Image

    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
    from tl_hub.data.synthetic import generate_signs

    images, labels = generate_signs(max(1, n // 43), seed=5)
    encoded = []
    for image in images[:n]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(GTSRB_CLASS_NAMES))}
    )
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": encoded, "label": labels[:n].tolist()}, features=features
    ).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.mark.slow
def test_a_release_with_views_predicts_on_them_everywhere(monkeypatch, capsys, tmp_path) -> None:
    from tl_hub.inference.predictor import Predictor
    from tl_hub.release.load import from_pretrained

    out = tmp_path / "run"
    args = ["--recipe", "cnn-synthetic", "--synthetic-per-class", "4", "--epochs", "1", "--batch-size", "43"]
    args += ["--tta-scales", "0.8,1.25", "--output-dir", str(out)]
    assert run_script_ok(TRAIN, args, monkeypatch, capsys)[0] == 0
    release = out / "model"
    config = json.loads((release / "config.json").read_text())
    assert config["preprocess"]["tta_scales"] == [0.8, 1.25]
    assert "predict on 3 views" in (release / "README.md").read_text()

    # Predictor: the mean softmax over the views of the release's own model.
    data = _signs_parquet(tmp_path / "signs")
    rows = datasets.load_dataset("parquet", data_dir=str(data), split="train")
    images = [row["image"] for row in rows]
    predictor = Predictor.from_pretrained(release, device="cpu")
    model, _ = from_pretrained(release)
    x = predictor.inputs(images)
    with torch.no_grad():
        plain = model(x)
        expected = sum(model(field_of_view(x, s)).softmax(1) for s in (1.0, 0.8, 1.25)) / 3
    probs = predictor.logits(images).softmax(1)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    model, config = from_pretrained(release)  # the bare module, wrapped to predict as the release does
    with torch.no_grad():
        wrapped = with_views(model, config.preprocess)(x).softmax(1)
    torch.testing.assert_close(wrapped, probs, atol=1e-5, rtol=1e-4)
    # ...and not the image alone: a 1-epoch model is nearly uniform, yet the views move it far more than that
    assert (probs - plain.softmax(1)).abs().max() > 10 * (probs - expected).abs().max()

    # evaluate.py scores the same predictions.
    scores = tmp_path / "scores.json"
    args = [str(release), "--dataset", str(data), "--split", "train", "--output", str(scores)]
    assert run_script_ok(EVALUATE, args, monkeypatch, capsys)[0] == 0
    right = (probs.argmax(1) == torch.tensor(rows["label"])).float().mean().item()
    assert json.loads(scores.read_text())["accuracy"] == pytest.approx(right)


def test_views_are_refused_where_features_are_cached(monkeypatch, capsys, tmp_path) -> None:
    args = ["--dataset", "synthetic", "--synthetic-per-class", "2", "--epochs", "1", "--batch-size", "43"]
    args += ["--strategy", "feature-extract", "--no-pretrained", "--tta-scales", "0.9"]
    code, err = run_script(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 2
    assert (
        "--tta-scales 0.9 scores views of each image, and feature-extract here trains and scores cached"
        in err
    )
    assert "add --no-feature-cache, or drop --tta-scales" in err
