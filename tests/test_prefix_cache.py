"""finetune-top on VGG16 with the frozen-prefix cache: blocks 1-4 run once per image and view, block 5 and the
head train on their cached output (small random-weights models on 32x32 images)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import tl_hub.training.features as features_module
from tl_hub.config import AugConfig, PreprocessConfig, TransferConfig
from tl_hub.models import create_model
from tl_hub.models.anatomy import head_input
from tl_hub.strategies import get_strategy
from tl_hub.training.features import cached_features
from tl_hub.training.strategies import TransferPlan

from .conftest import run_entry_point
from .test_cli import TRAIN

SMALL = PreprocessConfig(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
# block 5 and the recipe's pooled head (its pooling and embedding are fixed, so not in a checkpoint)
TRAINED = {"features.24", "features.26", "features.28", "head.fc"}


def vgg16() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)


def test_the_strategy_records_say_what_the_cache_may_hold() -> None:
    assert get_strategy("feature-extract").cache == "head-input"
    assert get_strategy("finetune-top").cache == "prefix"
    assert get_strategy("finetune-all").cache is None and get_strategy("scratch").cache is None
    plan = TransferPlan(vgg16(), "features", TransferConfig(strategy="finetune-top"), lr=1e-3)
    assert plan.prefix_kind == "prefix:features:24"  # conv blocks 1-4 and pool 4
    assert TransferPlan(vgg16(), "features", TransferConfig(), lr=1e-3).prefix_kind is None


def test_the_prefix_cache_hits_and_misses_like_the_feature_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO)
    model = vgg16()
    plan = TransferPlan(model, "features", TransferConfig(strategy="finetune-top"), lr=1e-3)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(6) % 2
    cpu, aug = torch.device("cpu"), AugConfig(rotation=10, hflip=True)
    calls: list[int] = []
    real_extract = features_module.extract
    monkeypatch.setattr(features_module, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))

    def cache(images=images, pre=SMALL, views=2, aug=aug) -> torch.Tensor:
        frozen, kind = plan.frozen_state(model), plan.prefix_kind
        return cached_features(
            model, images, labels, pre, cpu, frozen=frozen, kind=kind, views=views, aug=aug
        )[0]

    first = cache()
    assert first.shape == (12, 512, 2, 2) and len(calls) == 2  # two views of six images: blocks 1-4's output
    clean = cached_features(
        model, images, labels, SMALL, cpu, frozen=plan.frozen_state(model), kind=plan.prefix_kind, fast=False
    )[0]
    from tl_hub.scoring import image_inputs

    expected = head_input(model, image_inputs(SMALL)(images), plan.prefix_kind)
    assert torch.allclose(clean, expected, atol=1e-5)  # what the prefix computes
    assert torch.equal(model.features[:24](image_inputs(SMALL)(images)), expected)
    calls.clear()

    with torch.no_grad():  # what trains does not change the prefix's output: still a hit
        model.features[26].weight.add_(1.0)
        model.head.fc.weight.add_(1.0)
    assert torch.equal(cache(), first) and calls == [] and "feature cache hit" in caplog.text
    with torch.no_grad():  # a frozen layer's weights: a miss
        model.features[0].weight[0, 0, 0, 0] += 1.0
    assert not torch.equal(cache(), first) and len(calls) == 2
    cache(pre=PreprocessConfig(input_size=32, mean=(0.4,) * 3, std=(0.25,) * 3))  # the preprocessing
    assert len(calls) == 4
    cache(aug=AugConfig(rotation=5, hflip=True))  # the augmentation of the views
    assert len(calls) == 6
    cache(images=images.flip(0).contiguous())  # another split's images
    assert len(calls) == 8
    cache(views=3)
    assert len(calls) == 11


def train(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys, caplog) -> str:
    """scripts/train.py in this process; returns its log."""
    caplog.clear()
    caplog.set_level(logging.INFO)
    code, _, err = run_entry_point(TRAIN, args, monkeypatch, capsys)
    assert not code and "Traceback" not in err, err
    return caplog.text


def write_random_base(path: Path) -> Path:
    """A random VGG16 conv base as a weights file: the 'pretrained' start the run reads."""
    save_file({f"features.{k}": v.contiguous() for k, v in vgg16().features.state_dict().items()}, path)
    return path


VGG_TINY = [
    *("--recipe", "vgg16-catsdogs-finetune", "--dataset", "synthetic", "--synthetic-per-class", "2"),
    # the recipe's 5 head epochs, then block 5 joins in epoch 6
    *("--input-size", "32", "--batch-size", "16", "--epochs", "6", "--cache-views", "2"),
]


@pytest.mark.slow
def test_finetune_top_on_the_prefix_cache_trains_block5_and_the_head_and_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, caplog
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    base = write_random_base(tmp_path / "base.safetensors")
    args = [*VGG_TINY, "--pretrained-file", str(base)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    err = train([*args, "--output-dir", str(full)], monkeypatch, capsys, caplog)
    assert "feature maps (512, 2, 2) computed" in err  # blocks 1-4's output, cached

    # Only block 5 and the head train: the checkpoint holds them alone, and the release's blocks 1-4 are
    # the start's own weights, bit for bit.
    with safe_open(full / "checkpoints" / "epoch_006" / "model.safetensors", "pt") as f:
        stored = {k.removeprefix("model.").rsplit(".", 1)[0] for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    assert stored == TRAINED
    release, start = load_file(full / "model" / "model.safetensors"), load_file(base)
    for name, tensor in start.items():
        index = int(name.split(".")[1])
        assert torch.equal(release[name], tensor) == (index < 24), name
    facts = json.loads((full / "model" / "facts.json").read_text())
    assert facts["strategy"] == "finetune-top"

    # Killed during epoch 6: resumed, it ends with the uninterrupted run's weights (the cache is hit).
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "model")
    shutil.rmtree(cut / "checkpoints" / "epoch_006")
    err = train([*args, "--output-dir", str(cut), "--resume"], monkeypatch, capsys, caplog)
    assert "feature cache hit" in err
    ours = load_file(cut / "model" / "model.safetensors")
    theirs = load_file(full / "model" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_finetune_top_with_augmentation_and_no_views_trains_on_live_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, caplog
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    base = write_random_base(tmp_path / "base.safetensors")
    args = [*VGG_TINY, "--cache-views", "0", "--epochs", "1", "--pretrained-file", str(base)]
    err = train([*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys, caplog)
    assert "feature maps" not in err  # nothing cached: augmentation would be lost
    assert "finetune-top trains on live images: --cache-views K caches K augmented views" in err
