"""The bad-input suite for runs: each row a case a careless or hostile user met, each asserting the exit code,
one line naming the value, no traceback, and nothing lost (no half-made run directory; an existing run
intact and resumable).

Flag values are in test_cli.py, damaged releases in test_release.py, the Space's raw API in test_space.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from tl_hub.release.files import write_json
from tl_hub.training.rundir import RunLock

from .conftest import ROOT, png_bytes
from .test_cli import TRAIN, run_script

TINY = ["--dataset", "synthetic", "--synthetic-per-class", "4", "--batch-size", "32", "--epochs", "2"]


def write_parquet(root: Path, labels: list[int], names: list[str] | None, split: str = "train") -> Path:
    """A parquet dataset of 8x8 images with these labels: ClassLabel `names` (declared in the schema, as any
    writer may, whether or not the labels fit them), or bare integers."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    image = {"bytes": png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), "path": None}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "data" / f"{split}-00000-of-00001.parquet"
    datasets.Dataset.from_dict(
        {"image": [image] * len(labels), "label": labels}, features=features
    ).to_parquet(str(path))
    if names:
        table = pq.read_table(path)
        declared = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
        meta = {b"huggingface": json.dumps({"info": {"features": declared.to_dict()}}).encode()}
        pq.write_table(table.replace_schema_metadata(meta), path)
    return root


def one_class_folder(root: Path) -> Path:
    (root / "stop").mkdir(parents=True)
    for i in range(6):
        (root / "stop" / f"{i}.png").write_bytes(png_bytes(np.full((8, 8, 3), i * 20, dtype=np.uint8)))
    return root


FIVE = [f"c{i}" for i in range(5)]
BALANCED = [i % 5 for i in range(40)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: write_parquet(d, [-1, *BALANCED[1:]], FIVE),
            "1 train row has a negative label (row 0: -1): labels must run from 0 to 4; fix or drop it",
        ),
        (
            lambda d: write_parquet(d, [*BALANCED[:-1], 7], FIVE),
            "1 train row has a label beyond the 5 label names (row 39: 7): labels must run from 0 to 4",
        ),
        (
            lambda d: write_parquet(d, [*BALANCED[:-1], 1000], None),
            "integer labels up to 1000 with only 6 classes in use (995 numbers have no image, 5 first): "
            "is 1000 a stray label?",
        ),
        (
            lambda d: write_parquet(d, [3] * 40, FIVE),
            "the train split has one class only ('c3'): a classifier needs images of two or more classes",
        ),
        (one_class_folder, "an image folder needs one subfolder per class, two or more"),
    ],
    ids=["label -1", "label past the names", "label 1000 of integers", "one class", "one-class folder"],
)
def test_unusable_labels_are_refused_and_leave_no_run_behind(make, message, monkeypatch, capsys, tmp_path):
    data = make(tmp_path / "data")
    out = tmp_path / "run"
    code, err = run_script(
        TRAIN, ["--dataset", str(data), "--output-dir", str(out), "--epochs", "1"], monkeypatch, capsys
    )
    assert code == 2 and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("output_dir", "message"),
    [
        ("{tmp}/a_file", "--output-dir '{tmp}/a_file' is a file, not a directory: choose a directory path"),
        ("{tmp}/a_file/run", "--output-dir '{tmp}/a_file/run' cannot be created (Not a directory)"),
        ("/proc/tl_hub_run", "--output-dir '/proc/tl_hub_run' cannot be created (No such file or directory)"),
        ("/dev/null", "--output-dir '/dev/null' is a file, not a directory"),
    ],
    ids=["a file", "under a file", "/proc", "/dev/null"],
)
def test_output_dirs_that_cannot_hold_a_run_are_refused_before_any_data_is_read(
    output_dir, message, monkeypatch, capsys, tmp_path
):
    (tmp_path / "a_file").write_text("keep me")
    code, err = run_script(
        TRAIN, [*TINY, "--output-dir", output_dir.format(tmp=tmp_path)], monkeypatch, capsys
    )
    assert code == 2 and message.format(tmp=tmp_path) in err
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_an_unlabelled_test_split_is_not_scored(monkeypatch, capsys, caplog, tmp_path) -> None:
    """Hub datasets mark a test split without labels with -1s: that is not an error, nor a score."""
    data = write_parquet(tmp_path / "data", BALANCED, FIVE)
    write_parquet(data, [-1] * 10, FIVE, split="test")
    out = tmp_path / "run"
    code, _ = run_script_ok(
        TRAIN, ["--dataset", str(data), "--output-dir", str(out), "--epochs", "1"], monkeypatch, capsys
    )
    assert code == 0 and "the test split has no labels (all -1): it is not scored" in caplog.text
    assert "test" not in json.loads((out / "model" / "metrics.json").read_text())


def test_a_train_size_the_dataset_cannot_give_is_said(monkeypatch, capsys, caplog, tmp_path) -> None:
    data = write_parquet(tmp_path / "data", BALANCED, FIVE)
    args = ["--dataset", str(data), "--train-size", "100", "--val-size", "10", "--epochs", "1"]
    code, _ = run_script_ok(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 0
    assert "train: 30 images, fewer than the 100 asked for (--train-size): the dataset has 40" in caplog.text


def test_compare_checks_its_output_dir_the_same_way(monkeypatch, capsys, tmp_path) -> None:
    (tmp_path / "a_file").write_text("keep me")
    args = [
        "--dataset",
        "synthetic",
        "--source-dataset",
        "synthetic",
        "--output-dir",
        str(tmp_path / "a_file"),
    ]
    code, err = run_script(ROOT / "scripts" / "compare.py", args, monkeypatch, capsys)
    assert code == 2 and f"--output-dir {str(tmp_path / 'a_file')!r} is a file, not a directory" in err


def test_a_diverging_run_stops_with_one_line_and_writes_no_release(monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "run"
    code, err = run_script(TRAIN, [*TINY, "--lr", "1e6", "--output-dir", str(out)], monkeypatch, capsys)
    assert code == 2
    assert "epoch 1: the training loss is" in err and "(--lr 1e+06 is likely too high): lower --lr" in err
    assert not out.exists()  # nothing half-made: a rerun with a lower --lr starts clean


def test_a_directory_in_use_is_refused_and_left_alone(monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out)
    assert lock.acquire() is None
    try:
        code, err = run_script(TRAIN, [*TINY, "--output-dir", str(out)], monkeypatch, capsys)
    finally:
        lock.release()
    assert code == 2 and f"--output-dir {str(out)!r} is in use by process" in err
    assert "wait for it to finish, or choose another --output-dir" in err
    assert [p.name for p in out.iterdir()] == [".lock"]  # the holder's files untouched


def test_two_runs_started_at_once_into_one_directory_never_mix(tmp_path: Path) -> None:
    out = tmp_path / "run"
    procs = [
        subprocess.Popen(
            [sys.executable, str(TRAIN), *TINY, "--seed", str(seed), "--output-dir", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for seed in (1, 2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    results = [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use by process" in refused and "Traceback" not in refused
    winner = 1 + [code for code, _ in results].index(0)
    assert json.loads((out / "run_config.json").read_text())["train"]["seed"] == winner
    assert json.loads((out / "model" / "config.json").read_text())["training"]["train"]["seed"] == winner


# -- damaged checkpoints ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-epoch run, trained once: the reference every resumed copy must equal."""
    out = tmp_path_factory.mktemp("finished") / "run"
    subprocess.run(
        [sys.executable, str(TRAIN), *TINY, "--output-dir", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return out


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "warning"),
    [
        (lambda c: truncate(c / "model.safetensors"), "model.safetensors has"),
        (lambda c: truncate(c / "optimizer.bin"), "optimizer.bin has"),
        (
            lambda c: (c / "scheduler.bin").write_bytes(b"x" * (c / "scheduler.bin").stat().st_size),
            "scheduler.bin does not match its checksum",
        ),
        (lambda c: (c / "trainer_state.json").write_text("{not json"), "trainer_state.json is unreadable"),
        (lambda c: (c / "random_states_0.pkl").unlink(), "random_states_0.pkl is missing"),
    ],
    ids=["truncated weights", "truncated optimizer", "corrupt scheduler", "corrupt state", "missing file"],
)
def test_resume_falls_back_to_the_newest_intact_checkpoint(
    finished_run: Path, damage, warning: str, monkeypatch, capsys, caplog, tmp_path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    shutil.rmtree(out / "model")  # as if killed after the last checkpoint, before the release
    damage(out / "checkpoints" / "epoch_002")
    code, _ = run_script_ok(TRAIN, [*TINY, "--output-dir", str(out), "--resume"], monkeypatch, capsys)
    assert code == 0
    assert f"checkpoint epoch_002 is damaged ({warning}" in caplog.text
    assert "continuing from epoch_001, the newest intact checkpoint" in caplog.text
    assert_same_weights(out / "model", finished_run / "model")


def test_a_damaged_run_config_is_restored_from_the_checkpoint(
    finished_run, monkeypatch, capsys, caplog, tmp_path
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    shutil.rmtree(out / "model")
    (out / "run_config.json").write_text("")
    code, _ = run_script_ok(TRAIN, [*TINY, "--output-dir", str(out), "--resume"], monkeypatch, capsys)
    assert (
        code == 0
        and "run_config.json is unreadable (JSONDecodeError): using the copy in epoch_002" in caplog.text
    )
    assert json.loads((out / "run_config.json").read_text()) == json.loads(
        (finished_run / "run_config.json").read_text()
    )
    # ...and the copy still guards the settings: another seed is refused.
    (out / "run_config.json").write_text("[]")
    shutil.rmtree(out / "model")
    code, err = run_script(
        TRAIN, [*TINY, "--seed", "9", "--output-dir", str(out), "--resume"], monkeypatch, capsys
    )
    assert code == 2 and "settings differ from the run" in err and "train.seed: 42 -> 9" in err


def run_script_ok(script: Path, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from .conftest import run_entry_point

    code, _, err = run_entry_point(script, args, monkeypatch, capsys)
    assert "Traceback" not in err
    return code or 0, err


def killed_and_resumed(args: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[Path, Path]:
    """Train `args` (2 epochs) into full/; copy it into cut/ as if killed during epoch 2, and resume that."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(full)], monkeypatch, capsys)[0] == 0
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "model")
    shutil.rmtree(cut / "checkpoints" / "epoch_002")  # killed during epoch 2
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(cut), "--resume"], monkeypatch, capsys)[0] == 0
    return full, cut


def assert_same_weights(a: Path, b: Path) -> None:
    ours, theirs = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert ours[k].equal(theirs[k]), k


def test_checkpoints_hold_what_trains_and_resume_is_bit_identical(
    release: Path, monkeypatch, capsys, tmp_path
):
    """feature-extract from a release: the frozen base is rebuilt from it, not stored in every checkpoint."""
    args = [*TINY, "--init-from", str(release), "--strategy", "feature-extract", "--no-feature-cache"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(full)], monkeypatch, capsys)[0] == 0
    with safe_open(full / "checkpoints" / "epoch_002" / "model.safetensors", "pt") as f:
        stored = set(f.keys())
    assert {k.split(".")[0] for k in stored} == {"pre_logits", "fc"}  # the head; the convolutions stay out
    state = json.loads((full / "checkpoints" / "epoch_002" / "trainer_state.json").read_text())
    assert len(state["frozen_sha256"]) == 64

    shutil.copytree(full, cut)
    shutil.rmtree(cut / "model")
    shutil.rmtree(cut / "checkpoints" / "epoch_002")  # killed during epoch 2
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(cut), "--resume"], monkeypatch, capsys)[0] == 0
    assert_same_weights(cut / "model", full / "model")


def test_resume_refuses_a_frozen_base_that_changed(release: Path, monkeypatch, capsys, tmp_path) -> None:
    base = tmp_path / "base"
    shutil.copytree(release, base)
    args = [*TINY, "--init-from", str(base), "--strategy", "feature-extract", "--epochs", "1"]
    out = tmp_path / "run"
    assert run_script_ok(TRAIN, [*args, "--output-dir", str(out)], monkeypatch, capsys)[0] == 0
    shutil.rmtree(out / "model")
    from tl_hub import LeNet5
    from tl_hub.release.files import save_pretrained
    from tl_hub.release.load import load_config

    save_pretrained(LeNet5(num_classes=43), base, load_config(base))  # other weights, same config
    code, err = run_script(TRAIN, [*args, "--output-dir", str(out), "--resume"], monkeypatch, capsys)
    assert code == 2 and "the frozen layers differ from those epoch_001 was trained with" in err


def test_metrics_json_is_strict_json(tmp_path: Path) -> None:
    write_json(
        tmp_path / "m.json", {"loss": float("nan"), "history": [{"val_loss": float("inf")}], "ok": 1.5}
    )
    text = (tmp_path / "m.json").read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    assert strict == {"loss": None, "history": [{"val_loss": None}], "ok": 1.5}


def test_a_run_that_ends_releases_its_lock_for_the_next(tmp_path: Path) -> None:
    """The lock is the kernel's: after a process ends (even by kill -9), the directory is free again."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tl_hub.training.rundir import RunLock; "
            "assert RunLock(Path(sys.argv[1])).acquire() is None; print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout.readline().strip() == "held"
    assert f"process {holder.pid}" in (RunLock(out).acquire() or "")
    holder.kill()
    holder.wait()
    deadline = time.time() + 10
    lock = RunLock(out)
    while lock.acquire() is not None and time.time() < deadline:
        time.sleep(0.05)
    assert lock.fd is not None
    lock.release()
