"""A third architecture family needs one registry record: training, strategies, releases and the Predictor
read everything else from the model itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tl_hub.accelerator import make_accelerator
from tl_hub.inference.predictor import Predictor
from tl_hub.models import ARCHITECTURES, Architecture
from tl_hub.recipes import get_recipe
from tl_hub.training.trainer import train


class TinyCNN(nn.Module):
    """A made-up family in timm's vocabulary: two conv stages, global pooling, a linear classifier."""

    def __init__(self, num_classes: int, in_chans: int, img_size: int, drop_rate: float, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.feature_info = [
            {"num_chs": width, "reduction": 2, "module": "features.2"},
            {"num_chs": 2 * width, "reduction": 2, "module": "features.4"},
        ]
        self.num_features = 2 * width
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 2 * width, H / 2, W / 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean(dim=(2, 3)))  # (B, 2 * width)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.fixture
def tinycnn(monkeypatch: pytest.MonkeyPatch) -> str:
    # The whole of "adding an architecture": one record (here with a constructor argument a release keeps).
    monkeypatch.setitem(ARCHITECTURES, "tinycnn", Architecture("tinycnn", TinyCNN, args={"width": 6}))
    return "tinycnn"


@pytest.mark.parametrize(
    "strategy", [pytest.param("feature-extract", marks=pytest.mark.slow), "finetune-top"]
)
def test_a_new_family_trains_releases_and_serves_from_its_record_alone(
    tinycnn: str, strategy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    start = tmp_path / "start"
    run = get_recipe("lenet-gtsrb").config.replace(
        {
            "model.architecture": tinycnn,
            "data.dataset": "synthetic",
            "data.synthetic_per_class": 4,
            "train.epochs": 2,
            "train.batch_size": 64,
            "transfer.strategy": "scratch",
        }
    )
    accelerator = make_accelerator()
    train(run, start, accelerator)  # a source model of the new family
    run = run.replace({"transfer.strategy": strategy, "transfer.init_from": str(start / "model")})
    run = run.replace({"transfer.head_epochs": 1})
    metrics = train(run, tmp_path / "run", accelerator)
    accelerator.end_training()

    assert set(metrics) == {"validation", "test"} and 0 <= metrics["test"]["accuracy"] <= 1
    before, after = (
        load_file(start / "model" / "model.safetensors"),
        load_file(tmp_path / "run/model/model.safetensors"),
    )
    trained = {k for k in before if not torch.equal(before[k], after[k])}
    if strategy == "feature-extract":  # only the classifier learns
        assert trained == {"fc.weight", "fc.bias"}
    else:  # the classifier, and the last stage after the head-only epoch; the first stage stays
        assert trained == {"fc.weight", "fc.bias", "features.3.weight", "features.3.bias"}
    predictor = Predictor.from_pretrained(tmp_path / "run" / "model")
    assert predictor.config.architecture == "tinycnn" and predictor.config.model_args["width"] == 6
    probabilities = predictor(torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), top_k=43)
    assert len(probabilities) == 43 and abs(sum(probabilities.values()) - 1) < 1e-5
