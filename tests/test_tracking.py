"""--report-to: the curves a TensorBoard user reads back (with TensorBoard's own reader), a resumed run that
continues them, a comparison's runs side by side, and a tracker that is not installed refused in one line."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tl_hub.flags import report_to
from tl_hub.training import tracking

from .conftest import ROOT
from .test_bad_inputs import run_script_ok
from .test_cli import TRAIN, run_script

COMPARE = ROOT / "scripts" / "compare.py"
# 4 signs per class: 172 training images, 6 steps of 32 an epoch (the last one of 12)
TINY = ["--dataset", "synthetic", "--synthetic-per-class", "4", "--batch-size", "32", "--seed", "1"]
STEPS = 6


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve under `run_dir`, as TensorBoard reads it: tag -> [(step, value)]."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_run_writes_the_curves_tensorboard_reads(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    args = [*TINY, "--epochs", "2", "--output-dir", str(out), "--report-to", "tensorboard"]
    assert run_script_ok(TRAIN, args, monkeypatch, capsys)[0] == 0
    curves = scalars(out / "logs" / "run")
    every_step = list(range(1, 2 * STEPS + 1))
    for tag in ("train/loss", "train/lr", "train/images_per_s"):
        assert [step for step, _ in curves[tag]] == every_step, tag
    assert [value for _, value in curves["train/lr"]] == pytest.approx([1e-3] * 2 * STEPS)  # constant lr
    assert all(value > 0 for _, value in curves["train/images_per_s"])
    # per epoch, at the epoch's last step
    for tag in ("val/accuracy", "val/macro_f1", "val/top5_accuracy", "val/loss", "train/epoch_loss", "epoch"):
        assert [step for step, _ in curves[tag]] == [STEPS, 2 * STEPS], tag
    assert [value for _, value in curves["epoch"]] == [1, 2]
    # once: the final metrics of every split, equal to the release's
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert curves[f"final/{split}/accuracy"] == [(2 * STEPS, pytest.approx(metrics[split]["accuracy"]))]
    # the epoch figures are the history's
    losses = [value for _, value in curves["train/epoch_loss"]]
    assert losses == pytest.approx([h["train_loss"] for h in metrics["history"]])
    # the configuration, as hyperparameters (Accelerate also keeps it as hparams.yml)
    (hparams,) = (out / "logs" / "run").glob("*/hparams.yml")
    text = hparams.read_text()
    assert "train.lr: 0.001" in text and "recipe: lenet-gtsrb" in text and "processes: 1" in text


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_curves_without_repeated_steps(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    args = [*TINY, "--epochs", "3", "--report-to", "tensorboard"]
    full, cut = tmp_path / "full" / "run", tmp_path / "cut" / "run"  # one run name: "run"
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(full)], monkeypatch, capsys)[0] == 0
    shutil.copytree(full, cut)  # its curves hold all 3 epochs, as a run killed at the end of epoch 3 would
    shutil.rmtree(cut / "model")
    shutil.rmtree(cut / "checkpoints" / "epoch_003")  # resumed at epoch 3, its steps logged before
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(cut), "--resume"], monkeypatch, capsys)[0] == 0
    theirs, ours = scalars(full / "logs" / "run"), scalars(cut / "logs" / "run")
    every_step = list(range(1, 3 * STEPS + 1))
    assert [step for step, _ in ours["train/loss"]] == every_step  # epochs 2 and 3 once, not twice
    # the resumed run replays the uninterrupted one: the same losses at the same steps
    assert ours["train/loss"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in theirs["train/loss"]]
    assert [s for s, _ in ours["val/accuracy"]] == [STEPS, 2 * STEPS, 3 * STEPS]
    assert ours["val/loss"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in theirs["val/loss"]]
    assert len(list((cut / "logs" / "run").glob("*/hparams.yml"))) == 1  # stored when the run began


@pytest.mark.slow
def test_a_comparison_logs_each_arm_as_a_run_of_its_own(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cmp"
    args = [*TINY[:-2], "--epochs", "1", "--arms", "scratch", "--sizes", "2,all", "--seeds", "0"]
    code, _ = run_script_ok(
        COMPARE, [*args, "--output-dir", str(out), "--report-to", "tensorboard"], monkeypatch, capsys
    )
    assert code == 0
    runs = sorted(p.name for p in (out / "logs").iterdir())
    assert runs == ["scratch-2-class-seed-0", "scratch-all-seed-0"]
    small, full = scalars(out / "logs" / runs[0]), scalars(out / "logs" / runs[1])
    assert [s for s, _ in small["train/loss"]] == [1, 2, 3]  # 86 training images (2 per class): 3 steps
    assert [s for s, _ in full["train/loss"]] == list(range(1, STEPS + 1))
    assert "final/validation/accuracy" in small and "final/validation/accuracy" in full


def test_a_tracker_that_is_not_installed_is_one_line_before_training(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(tracking._AVAILABLE, "wandb", lambda: False)
    out = tmp_path / "run"
    code, err = run_script(
        TRAIN, [*TINY, "--output-dir", str(out), "--report-to", "tensorboard,wandb"], monkeypatch, capsys
    )
    assert code == 2 and err == "error: --report-to wandb: wandb is not installed: pip install wandb"
    assert not out.exists()  # said before anything was decoded or written


def test_report_to_parses_names_all_and_none(monkeypatch) -> None:
    assert report_to("none") == ()
    assert report_to("tensorboard, mlflow") == ("tensorboard", "mlflow")
    for bad, message in (
        (
            "tensorbored",
            "unknown tracker 'tensorbored': choose from tensorboard, trackio, wandb, mlflow, all, none",
        ),
        ("wandb,wandb", "repeats a tracker"),
        ("all,wandb", "'all' and 'none' stand alone"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            report_to(bad)
    installed = {"tensorboard": True, "trackio": False, "wandb": True, "mlflow": False}
    for name, there in installed.items():
        monkeypatch.setitem(tracking._AVAILABLE, name, lambda there=there: there)
    assert tracking.resolve_trackers(("all",)) == ("tensorboard", "wandb")
    assert tracking.resolve_trackers(()) == ()


def test_without_report_to_nothing_is_tracked(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    assert (
        run_script_ok(TRAIN, [*TINY, "--epochs", "1", "--output-dir", str(out)], monkeypatch, capsys)[0] == 0
    )
    assert (out / "model").is_dir() and not (out / "logs").exists()
