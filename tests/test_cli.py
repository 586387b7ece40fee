"""Bad input to the scripts: one line naming the value and the fix, exit code 2, no traceback."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

TRAIN = ROOT / "scripts" / "train.py"
EVALUATE = ROOT / "scripts" / "evaluate.py"


def run_script(script: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    """Run the real entry point in this process (fast); returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # Progress bars (datasets' own) may precede it; the error is the last line, and the only one.
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0])
    return exit_info.value.code, lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "lenet-mnist"], "unknown recipe 'lenet-mnist': choose one of"),
        (["--dataset", "./no/such/dir"], "dataset path './no/such/dir' does not exist"),
        (["--epochs", "0"], "--epochs 0: expected a positive integer"),
        (["--epochs", "2.5"], "argument --epochs: '2.5' is not an integer"),
        (["--batch-size", "-8"], "--batch-size -8: expected a positive integer"),
        (["--lr", "0"], "--lr 0.0: expected a positive finite number"),
        (["--lr", "inf"], "--lr inf: expected a positive finite number"),
        (["--lr", "nan"], "--lr nan: expected a positive finite number"),
        (["--lr", "fast"], "argument --lr: 'fast' is not a number"),
        (["--ema-decay", "1"], "--ema-decay 1.0: expected a value in [0, 1) (0: off)"),
        (["--tta-scales", "1"], "--tta-scales (1.0,): expected at most 16 scales from 0.5 to 2, none"),
        (["--tta-scales", "0.9,x"], "argument --tta-scales: 'x' is not a number"),
        (["--ema-decay", "-0.5"], "--ema-decay -0.5: expected a value in [0, 1) (0: off)"),
        (["--seed", "-5"], "--seed -5: expected an integer from 0 to 4294965"),
        (["--seed", "4294968"], "--seed 4294968: expected an integer from 0 to 4294965"),
        (["--seed", "99999999999"], "--seed 99999999999: expected an integer from 0 to 4294965"),
        (["--max-train-samples", "-1"], "--max-train-samples -1: expected a positive integer, or all"),
        (["--train-sample", "random"], "--train-sample random: expected one of balanced, stratified"),
        (
            ["--train-size", "5", "--max-train-samples", "5"],
            "--train-size and --max-train-samples say the same thing: pass --train-size",
        ),
        (["--colour", "red"], "unrecognized arguments: --colour red"),
        (["--output-dir", ""], "argument --output-dir: '' is not a path: give a directory"),
        (["--push-to-hub"], "--push-to-hub needs --hub-model-id USER/NAME"),
        (["--strategy", "freeze-some"], "--strategy freeze-some: expected one of scratch, feature-extract"),
        (
            ["--strategy", "scratch", "--init-from", "runs/x"],
            "init_from='runs/x' contradicts strategy='scratch'",
        ),
        (
            ["--no-pretrained", "--pretrained-file", "w.pth"],
            "--no-pretrained and --pretrained-file contradict",
        ),
        (
            ["--strategy", "scratch", "--pretrained-file", "w.pth"],
            "--pretrained-file w.pth contradicts strategy scratch (random weights, the given's)",
        ),
        (
            ["--recipe", "lenet-gtsrb", "--pretrained-file", "w.pth"],
            "--pretrained-file w.pth contradicts strategy scratch (random weights, the recipe's)",
        ),
        (["--pooled-head"], "--pooled-head: lenet5 has no pooled variant of its head"),
        (["--train-size", "0"], "--train-size 0: expected a positive integer, or all"),
        (["--train-size", "some"], "argument --train-size: 'some' is neither an integer nor 'all'"),
        (["--val-size", "-3"], "--val-size -3: expected a positive integer, or all"),
        (["--synthetic-per-class", "0"], "--synthetic-per-class 0: expected a positive integer"),
        (["--cache-views", "-2"], "--cache-views -2: expected 0 or more"),
        (["--head-epochs", "-1"], "--head-epochs -1: expected a non-negative integer (at most 10,000)"),
        (["--head-epochs", "two"], "argument --head-epochs: 'two' is not an integer"),
        (["--top-lr-scale", "2"], "--top-lr-scale 2.0: expected a value in (0, 1]"),
        (["--base-lr-scale", "0"], "--base-lr-scale 0.0: expected a value in (0, 1]"),
        (["--push-to-hub", "--hub-model-id", "just-a-name"], "'just-a-name' is not of the form USER/NAME"),
        (["--push-to-hub", "--hub-model-id", "me/m"], "HF_HUB_OFFLINE is set: unset it to push"),
        (
            ["--epochs", "99999999999999999999999"],
            "--epochs 99999999999999999999999: expected a positive integer (at most 10,000)",
        ),
        (["--epochs", "10001"], "--epochs 10001: expected a positive integer (at most 10,000)"),
        (["--batch-size", "1000000"], "--batch-size 1000000: expected a positive integer (at most 65,536)"),
        (
            ["--max-train-samples", "100000000000"],
            "--max-train-samples 100000000000: expected a positive integer, or all (at most 10,000,000,000)",
        ),
        (["--train-size", "1" + "0" * 30], "expected a positive integer, or all (at most 10,000,000,000)"),
        (
            ["--val-size", "99999999999"],
            "--val-size 99999999999: expected a positive integer, or all (at most",
        ),
        (
            ["--synthetic-per-class", "1000000"],
            "--synthetic-per-class 1000000: expected a positive integer (at most 20,000)",
        ),
        (["--cache-views", "1000"], "--cache-views 1000: expected 0 or more (at most 64)"),
        (["--input-size", "100000"], "--input-size 100000: expected an integer from 8 to 4096"),
        (
            ["--input-size", "12", "--dataset", "synthetic", "--synthetic-per-class", "1"],
            "img_size=12 is too small for LeNet-5: its two pooled 5x5 convolutions need 16 pixels or more "
            "(use an input size of 16 or more: --input-size 16)",
        ),
        (["--mean", "nan"], "--mean (nan,): expected finite values"),
        (["--std", "inf"], "--std (inf,): expected positive values"),
    ],
)
def test_train_rejects_bad_input_in_one_line(args, message, monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--image-column", "photo"],
            "image column 'photo' not in the dataset; its columns are: image, label",
        ),
        (["--label-column", "image"], "column 'image' holds Image"),
        (["--image-column", "label"], "column 'label' holds ClassLabel values, not images"),
    ],
)
def test_train_names_bad_columns(args, message, parquet_dir, monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(
        TRAIN,
        ["--dataset", str(parquet_dir), *args, "--output-dir", str(tmp_path / "run")],
        monkeypatch,
        capsys,
    )
    assert code == 2 and message in err


def test_an_existing_run_is_not_overwritten_without_resume(monkeypatch, capsys, tmp_path) -> None:
    (tmp_path / "run" / "model").mkdir(parents=True)
    code, err = run_script(
        TRAIN, ["--dataset", "synthetic", "--output-dir", str(tmp_path / "run")], monkeypatch, capsys
    )
    assert code == 2 and "already holds a run: pass --resume to continue it" in err


def test_evaluate_names_a_missing_model(monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(EVALUATE, [str(tmp_path), "--dataset", "synthetic"], monkeypatch, capsys)
    assert code == 2 and "config.json not found in" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size 0: expected a positive integer (at most 65,536)"),
        (["--batch-size", "99999999999999999999"], "--batch-size 99999999999999999999: expected a positive"),
        (["--batch-size", "8.5"], "argument --batch-size: '8.5' is not an integer"),
        (["--label-map", "c1"], "--label-map 'c1': 'c1' is not DATA=MODEL; e.g. --label-map c1=cat,c2=dog"),
    ],
)
def test_evaluate_rejects_bad_flags_in_one_line(args, message, monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(EVALUATE, [str(tmp_path), "--dataset", "synthetic", *args], monkeypatch, capsys)
    assert code == 2 and message in err


def test_compare_bounds_its_sizes(monkeypatch, capsys, tmp_path) -> None:
    args = ["--dataset", "synthetic", "--sizes", "10,99999999999", "--output-dir", str(tmp_path / "c")]
    code, err = run_script(ROOT / "scripts" / "compare.py", args, monkeypatch, capsys)
    assert code == 2 and "99999999999 must be a positive integer (at most 10,000,000,000)" in err


@pytest.mark.slow
def test_a_real_process_exits_2_without_traceback(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(TRAIN),
            "--dataset",
            str(tmp_path / "missing"),
            "--output-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: dataset path {str(tmp_path / 'missing')!r} does not exist: "
        "pass an existing directory or a Hub id"
    ]


def test_a_lone_cpu_process_left_one_thread_by_accelerate_launch_is_told_how_to_use_every_core(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import os

    import torch

    from tl_hub import accelerator

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: nothing is left idle")
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "NO")  # what accelerate launch sets
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    caplog.set_level(logging.WARNING)
    try:
        torch.set_num_threads(1)
        accelerator.check_threads(accelerator.Accelerator(cpu=True))
    finally:
        torch.set_num_threads(threads)
    assert "accelerate launch gave this CPU process 1 thread of" in caplog.text
    assert "--num_cpu_threads_per_process" in caplog.text


def test_pretrained_file_takes_a_directory_holding_model_safetensors(monkeypatch, capsys, tmp_path) -> None:
    from tl_hub.cli import run_config_from_args

    module = runpy.run_path(str(TRAIN))
    weights = tmp_path / "vgg16.keras_in1k_conv"
    weights.mkdir()
    argv = ["--recipe", "vgg16-catsdogs", "--pretrained-file", str(weights)]
    code, err = run_script(TRAIN, [*argv, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 2
    assert f"'{weights}' is a directory without model.safetensors: give the weights file itself" in err
    (weights / "model.safetensors").write_bytes(b"")
    run = run_config_from_args(module["parse_args"](argv))
    assert run.model.pretrained == str(weights / "model.safetensors")


def test_max_train_samples_still_works_for_one_release_and_says_what_to_write(caplog) -> None:
    import logging

    from tl_hub.cli import run_config_from_args

    parse = runpy.run_path(str(TRAIN))["parse_args"]
    with caplog.at_level(logging.WARNING):
        old = run_config_from_args(parse(["--max-train-samples", "300"]))
    assert (
        "--max-train-samples is deprecated and goes in the next release: write --train-size N " in caplog.text
    )
    assert old == run_config_from_args(parse(["--train-size", "300", "--train-sample", "stratified"]))


def test_train_help_lists_the_recipes_with_what_each_is(monkeypatch, capsys) -> None:
    from tl_hub.recipes import RECIPES

    monkeypatch.setattr(sys, "argv", [str(TRAIN), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    listed = out[out.index("recipes (--recipe NAME") :]
    for recipe in RECIPES.values():
        assert f"  {recipe.name} " in listed and recipe.description.split()[0] in listed
    assert "--report-to" in out


def test_the_schedule_flags_set_the_strategys_schedule() -> None:
    from tl_hub.cli import run_config_from_args

    parse = runpy.run_path(str(TRAIN))["parse_args"]
    argv = ["--recipe", "vgg16-catsdogs-finetune", "--head-epochs", "2", "--top-lr-scale", "0.05"]
    run = run_config_from_args(parse(argv))
    assert (run.transfer.head_epochs, run.transfer.top_lr_scale) == (2, 0.05)
    assert run.transfer.schedule(run.train.lr, run.train.epochs) == (
        "the head from epoch 1 at lr 0.001; the base's last stage from epoch 3 at lr 5e-05"
    )
    all_layers = run_config_from_args(parse(["--strategy", "finetune-all", "--base-lr-scale", "0.1"]))
    assert all_layers.transfer.base_lr_scale == 0.1
