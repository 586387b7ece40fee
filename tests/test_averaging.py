"""The weights' moving average (--ema-decay): how it averages, that checkpoints keep it and resume it,
and that the release holds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tl_hub.training.averaging import EMA_NAME, WeightAverage

from .test_bad_inputs import TINY, TRAIN, assert_same_weights, run_script_ok


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_the_average_copies_the_first_step_then_blends_with_a_warmed_up_decay() -> None:
    net = _net()
    average = WeightAverage(net, decay=0.9, steps_per_epoch=10)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].running_mean.fill_(2.0)
    average.update()  # step 1: the average is the weights
    assert average.module[0].weight.eq(1.0).all() and average.module[1].running_mean.eq(2.0).all()
    with torch.no_grad():
        net[0].weight.fill_(5.0)
        net[1].running_mean.fill_(6.0)
        net[1].num_batches_tracked.fill_(7)
    average.update()  # step 2: decay min(0.9, 3 / 12) = 0.25
    torch.testing.assert_close(average.module[0].weight, torch.full((4, 3), 0.25 * 1 + 0.75 * 5))
    torch.testing.assert_close(average.module[1].running_mean, torch.full((4,), 0.25 * 2 + 0.75 * 6))
    assert average.module[1].num_batches_tracked.item() == 7  # counts are copied, not averaged
    # Late in a run the decay is the one asked for.
    average.start_epoch(101)  # step 1000 next
    before = average.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.fill_(15.0)
    average.update()
    torch.testing.assert_close(average.module[0].weight, 0.9 * before + 0.1 * 15.0)
    assert not any(p.requires_grad for p in average.module.parameters())


def test_the_average_saves_as_safetensors_and_loads_into_a_fresh_one(tmp_path: Path) -> None:
    net = _net()
    average = WeightAverage(net, decay=0.5, steps_per_epoch=1)
    with torch.no_grad():
        net[0].bias.fill_(3.0)
    average.update()
    average.save(tmp_path)
    fresh = WeightAverage(_net(), decay=0.5, steps_per_epoch=1)
    fresh.load(tmp_path)
    for name, t in average.module.state_dict().items():
        assert fresh.module.state_dict()[name].equal(t), name
    with pytest.raises(FileNotFoundError, match=EMA_NAME):
        fresh.load(tmp_path / "elsewhere")


@pytest.mark.slow
def test_the_release_holds_the_average_and_a_resumed_run_equals_an_uninterrupted_one(
    monkeypatch, capsys, tmp_path
) -> None:
    args = [*TINY, "--ema-decay", "0.9"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(full)], monkeypatch, capsys)[0] == 0
    last = full / "checkpoints" / "epoch_002"
    state = json.loads((last / "trainer_state.json").read_text())
    assert EMA_NAME in state["files"]  # checksummed with the rest of the checkpoint
    assert json.loads((full / "run_config.json").read_text())["train"]["ema_decay"] == 0.9
    averaged, stepped = load_file(last / EMA_NAME), load_file(last / "model.safetensors")
    released = load_file(full / "model" / "model.safetensors")
    assert released.keys() == averaged.keys()
    assert all(released[k].equal(averaged[k]) for k in released)  # the release is the average...
    assert any(not released[k].equal(stepped[k]) for k in stepped)  # ...not the last step's weights

    shutil.copytree(full, cut)
    shutil.rmtree(cut / "model")
    shutil.rmtree(cut / "checkpoints" / "epoch_002")  # killed during epoch 2
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(cut), "--resume"], monkeypatch, capsys)[0] == 0
    assert_same_weights(cut / "model", full / "model")
    curves = [
        [
            (row["val_loss"], row["val_accuracy"])
            for row in json.loads((d / "model" / "metrics.json").read_text())["history"]
        ]
        for d in (full, cut)
    ]
    assert curves[0] == curves[1]  # the average was scored every epoch, and resumed where it was
