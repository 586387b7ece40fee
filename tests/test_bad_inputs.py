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
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from tl_hub.release.files import write_json
from tl_hub.training.rundir import RunLock

from .conftest import ROOT, png_bytes
from .test_cli import EVALUATE, TRAIN, run_script

TINY = ["--dataset", "synthetic", "--synthetic-per-class", "4", "--batch-size", "32", "--epochs", "2"]


def write_parquet(
    root: Path, labels: list, names: list[str] | None, split: str = "train", dtype: str = "int64"
) -> Path:
    """A parquet dataset of 8x8 images with these labels: ClassLabel `names` (declared in the schema, as any
    writer may, whether or not the labels fit them), or bare values of `dtype`."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    image = {"bytes": png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), "path": None}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value(dtype)})
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


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    """train/<class>/<n>.png with this many images per class (0: an empty class folder)."""
    for name, n in classes.items():
        (root / "train" / name).mkdir(parents=True)
        for i in range(n):
            image = np.full((8, 8, 3), 40 * i + 7 * len(name), dtype=np.uint8)
            (root / "train" / name / f"{i}.png").write_bytes(png_bytes(image))
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
        (
            lambda d: write_parquet(d, [*BALANCED[:5], None, *BALANCED[6:]], FIVE),
            "column 'label': 1 train row has no label (row 5: null): every row needs a class number from 0 "
            "to 4; fix or drop it",
        ),
        (
            lambda d: write_parquet(d, [None] * 40, None),
            "column 'label': 40 train rows have no label (row 0: null)",
        ),
        (
            lambda d: write_parquet(d, [*map(float, BALANCED[:-1]), float("nan")], None, dtype="float64"),
            "column 'label': 1 train row has a label that is not an integer (row 39: NaN): labels are class "
            "numbers from 0 to the number of classes - 1; fix or drop it",
        ),
        (
            lambda d: write_parquet(d, [2.5, *map(float, BALANCED[1:])], FIVE, dtype="float32"),
            "column 'label': 1 train row has a label that is not an integer (row 0: 2.5)",
        ),
        (
            lambda d: write_parquet(d, [*map(float, BALANCED[:-1]), float("inf")], None, dtype="float64"),
            "column 'label': 1 train row has a label that is not an integer (row 39: inf)",
        ),
        (
            lambda d: write_parquet(d, [*BALANCED[:-1], 2**63 - 1], None),
            "column 'label': 1 train row has a label of 1,000,000 or more, more classes than any model has "
            "(row 39: 9223372036854775807)",
        ),
        (
            lambda d: write_parquet(d, [*BALANCED[:-1], 10**12], FIVE),
            "column 'label': 1 train row has a label beyond the 5 label names (row 39: 1000000000000)",
        ),
        (
            lambda d: write_parquet(d, [str(i) for i in BALANCED], None, dtype="string"),
            "column 'label' holds Value('string'), not integer class labels; name the label column with "
            "--label-column",
        ),
        (
            lambda d: write_parquet(write_parquet(d, BALANCED, FIVE), [0, 1, None], FIVE, split="validation"),
            "column 'label': 1 validation row has no label (row 2: null)",
        ),
        (lambda d: write_parquet(d, [], FIVE), "is empty: its parquet files hold no rows"),
        (lambda d: write_parquet(d, [], None), "is empty: it has no rows"),
        (
            lambda d: image_folder(d, {"cat": 4, "dog": 4, "bird": 0}),
            "class folder 'train/bird' holds no images: its class would be dropped without a word; add its "
            "images, or remove the folder",
        ),
    ],
    ids=[
        "label -1",
        "label past the names",
        "label 1000 of integers",
        "one class",
        "one-class folder",
        "a null label",
        "all labels null",
        "a NaN label",
        "a fractional label",
        "an infinite label",
        "int64 max",
        "label 10^12 past the names",
        "string labels",
        "a null validation label",
        "no rows, ClassLabel",
        "no rows, integers",
        "an empty class folder",
    ],
)
def test_unusable_labels_are_refused_and_leave_no_run_behind(make, message, monkeypatch, capsys, tmp_path):
    data = make(tmp_path / "data")
    out = tmp_path / "run"
    code, err = run_script(
        TRAIN, ["--dataset", str(data), "--output-dir", str(out), "--epochs", "1"], monkeypatch, capsys
    )
    assert code == 2 and message in err
    assert not out.exists()


# Runs an entry point after the heavy imports, and says how much its peak memory grew beyond them.
MEASURED = """
import resource, runpy, sys
import tl_hub.data.loading, tl_hub.training.trainer
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(f"grew {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base} KiB", file=sys.stderr)
"""


def measured_run(script: Path, args: list[str], timeout: float = 120) -> tuple[int, str, int]:
    """(exit code, the error line, peak memory growth in bytes) of `script` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, str(script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.replace("\r", "\n").splitlines()
    errors = [line for line in lines if line.startswith("error")]
    grew = int(next(line for line in lines if line.startswith("grew ")).split()[1]) * 1024
    return done.returncode, errors[-1] if errors else "", grew


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "message"),
    [
        (10**12, "(row 39: 1000000000000): labels must run from 0 to the number of classes - 1"),
        (999_999, "integer labels up to 999999 with only 6 classes in use (999,994 numbers have no image"),
    ],
    ids=["10^12", "999,999"],
)
def test_a_huge_bare_integer_label_is_refused_in_bounded_memory_and_time(label, message, tmp_path) -> None:
    """Without ClassLabel names the classes are 0..max: one huge label must not make max names (it took
    14.8 GB for 10^12)."""
    data = write_parquet(tmp_path / "data", [*BALANCED[:-1], label], None)
    start = time.monotonic()
    code, err, grew = measured_run(TRAIN, ["--dataset", str(data), "--output-dir", str(tmp_path / "run")])
    assert code == 2 and message in err
    assert grew < 2**30 and time.monotonic() - start < 120
    assert not (tmp_path / "run").exists()


def test_a_train_size_beyond_the_images_trains_on_all_and_says_how_many(
    monkeypatch, capsys, caplog, tmp_path
) -> None:
    data = write_parquet(tmp_path / "data", BALANCED[:16], FIVE)
    args = ["--dataset", str(data), "--train-size", "100000", "--epochs", "1"]
    code, _ = run_script_ok(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 0
    counts = json.loads((tmp_path / "run" / "model" / "metrics.json").read_text())["data"]["counts"]
    assert (
        f"train: {counts['train']} images, fewer than the 100000 asked for (--train-size): the "
        f"dataset has 16, of which validation took {counts['validation']}" in caplog.text
    )


def test_images_and_empty_folders_beside_parquet_files_are_not_an_image_folder(
    monkeypatch, capsys, tmp_path
) -> None:
    data = write_parquet(tmp_path / "data", BALANCED, FIVE)
    image_folder(data / "docs", {"figures": 1, "empty": 0})
    args = ["--dataset", str(data), "--epochs", "1", "--output-dir", str(tmp_path / "run")]
    assert run_script_ok(TRAIN, args, monkeypatch, capsys)[0] == 0


def test_a_float_label_column_of_whole_numbers_trains(monkeypatch, capsys, tmp_path) -> None:
    """pandas writes integer labels as floats once one is missing: whole-number floats are class numbers."""
    data = write_parquet(tmp_path / "data", [float(v) for v in BALANCED], None, dtype="float64")
    args = ["--dataset", str(data), "--epochs", "1", "--output-dir", str(tmp_path / "run")]
    assert run_script_ok(TRAIN, args, monkeypatch, capsys)[0] == 0
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["label_names"] == ["0", "1", "2", "3", "4"]


# -- evaluation: the dataset's labels against the release's ----------------------------------------------


@pytest.fixture(scope="module")
def pets_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tl_hub import LeNet5
    from tl_hub.recipes import get_recipe

    from .conftest import write_fake_release

    directory = tmp_path_factory.mktemp("pets") / "model"
    return write_fake_release(
        directory, LeNet5(num_classes=2), get_recipe("lenet-gtsrb").config, ["cat", "dog"]
    )


@pytest.fixture(scope="module")
def c1_c2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("c1c2"), {"c1": 3, "c2": 3})


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        (
            None,
            "the dataset's classes 'c1', 'c2' are not among the model's ('cat', 'dog'): say which is which "
            "with --label-map DATA=MODEL,... (e.g. --label-map c1=cat,c2=dog), a JSON file, or --label-map "
            "position",
        ),
        ("c1=cat", "the dataset's classes 'c2' are not among the model's"),
        ("c1=cat,c2=cow", "--label-map maps 'c2' to 'cow', which is not a class of the model"),
        (
            "c1=cat,c3=dog",
            "--label-map maps 'c3', which is not a class of the dataset (its classes: 'c1', 'c2')",
        ),
        ("c1=cat,c2=cat", "the dataset's classes 'c1' and 'c2' both map to the model's 'cat'"),
        ("c1=cat,c1=dog", "--label-map 'c1=cat,c1=dog' maps 'c1' twice"),
        ("c1:cat", "--label-map 'c1:cat': 'c1:cat' is not DATA=MODEL"),
        ("{tmp}/missing.json", "--label-map '{tmp}/missing.json': no such file"),
        ("{tmp}/list.json", "expected a JSON object of dataset name -> model name"),
    ],
    ids=[
        "no map",
        "half a map",
        "unknown model class",
        "unknown data class",
        "two to one",
        "twice",
        "no =",
        "no file",
        "a JSON list",
    ],
)
def test_evaluation_refuses_other_class_names_unless_mapped(
    pets_release, c1_c2, label_map, message, monkeypatch, capsys, tmp_path
) -> None:
    (tmp_path / "list.json").write_text('["cat", "dog"]')
    args = [str(pets_release), "--dataset", str(c1_c2), "--split", "train"]
    if label_map is not None:
        args += ["--label-map", label_map.format(tmp=tmp_path)]
    code, err = run_script(EVALUATE, args, monkeypatch, capsys)
    assert code == 2 and message.format(tmp=tmp_path) in err


@pytest.mark.parametrize("how", ["pairs", "json", "position"])
def test_evaluation_maps_class_names_as_told(pets_release, c1_c2, how, monkeypatch, capsys, caplog, tmp_path):
    (tmp_path / "map.json").write_text(json.dumps({"c1": "dog", "c2": "cat"}))
    label_map = {"pairs": "c1=dog,c2=cat", "json": str(tmp_path / "map.json"), "position": "position"}[how]
    args = [str(pets_release), "--dataset", str(c1_c2), "--split", "train", "--label-map", label_map]
    code, _ = run_script_ok(EVALUATE, [*args, "--output", str(tmp_path / "m.json")], monkeypatch, capsys)
    assert code == 0 and json.loads((tmp_path / "m.json").read_text())["num_samples"] == 6
    if how == "position":
        assert "--label-map position: the dataset's classes taken as the model's, in order" in caplog.text


def test_evaluation_refuses_labels_past_the_names_before_decoding(release, monkeypatch, capsys, tmp_path):
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES

    data = write_parquet(tmp_path / "data", [*BALANCED[:-1], 99], list(GTSRB_CLASS_NAMES))
    code, err = run_script(
        EVALUATE, [str(release), "--dataset", str(data), "--split", "train"], monkeypatch, capsys
    )
    assert code == 2
    assert "column 'label': 1 train row has a label beyond the 43 label names (row 39: 99)" in err


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([None] * 8, "split 'train' of dataset '{data}' has no labels (all -1 or null): it cannot be scored"),
        ([-1] * 8, "split 'train' of dataset '{data}' has no labels (all -1 or null)"),
        ([0, 1, None, 3], "column 'label': 1 train row has no label (row 2: null)"),
        ([], "is empty: its parquet files hold no rows"),
    ],
    ids=["all null", "all -1", "a null", "no rows"],
)
def test_evaluation_refuses_a_split_without_labels(release, labels, message, monkeypatch, capsys, tmp_path):
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES

    data = write_parquet(tmp_path / "data", labels, list(GTSRB_CLASS_NAMES))
    code, err = run_script(
        EVALUATE, [str(release), "--dataset", str(data), "--split", "train"], monkeypatch, capsys
    )
    assert code == 2 and message.format(data=data) in err


# -- damaged releases at the entry points (each damage in detail: test_release.py) -------------------------


def _deep(release: Path) -> None:
    (release / "config.json").write_text("[" * 100_000 + "]" * 100_000)


def _repeated(release: Path) -> None:
    config = json.loads((release / "config.json").read_text())
    config["label_names"][-1] = config["label_names"][0]
    (release / "config.json").write_text(json.dumps(config))


def _int32(release: Path) -> None:
    from safetensors.torch import save_file

    state = load_file(release / "model.safetensors")
    save_file({k: v.to(torch.int32) for k, v in state.items()}, release / "model.safetensors")


def test_evaluation_on_a_split_the_renderer_has_not_is_refused_before_rendering(
    release, monkeypatch, capsys
) -> None:
    import tl_hub.data.synthetic as renderer

    monkeypatch.setattr(renderer, "generate_signs", lambda *a, **k: pytest.fail("rendered before refusing"))
    code, err = run_script(
        EVALUATE, [str(release), "--dataset", "synthetic", "--split", "nope"], monkeypatch, capsys
    )
    assert code == 2
    assert "split 'nope' not in dataset 'synthetic': choose one of train, validation, test" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("script", ["evaluate.py", "push.py"])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_deep, "config.json of '{release}' nests deeper than 32 levels: is it a tl_hub release?"),
        (_repeated, "config.json of '{release}': label_names repeat 'Speed limit (20km/h)'"),
        (
            _int32,
            "weights in {release} do not fit LeNet5: wrong dtype: features.0.weight is int32, expected a ",
        ),
    ],
    ids=["nested 100,000 deep", "a repeated label name", "int32 weights"],
)
def test_a_damaged_release_is_one_line_in_evaluate_and_push(
    release, script, damage, message, monkeypatch, capsys, tmp_path
) -> None:
    bad = tmp_path / "model"
    shutil.copytree(release, bad)
    damage(bad)
    args = {
        "evaluate.py": [str(bad), "--dataset", "synthetic", "--split", "test"],
        "push.py": [str(bad), "someone/signs", "--hub-token", "not-used"],
    }[script]
    code, err = run_script(ROOT / "scripts" / script, args, monkeypatch, capsys)
    assert code == 2 and message.format(release=bad) in err


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


def test_a_val_size_the_dataset_cannot_give_is_said(monkeypatch, capsys, caplog, tmp_path) -> None:
    data = write_parquet(tmp_path / "data", BALANCED, FIVE)
    write_parquet(data, BALANCED[:10], FIVE, split="validation")
    args = ["--dataset", str(data), "--val-size", "100", "--epochs", "1"]
    code, _ = run_script_ok(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 0 and "validation: 10 images, fewer than the 100 asked for (--val-size)" in caplog.text


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# -- the Python API's inputs: Predictor and explain --------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(release: Path):
    from tl_hub import Predictor

    return Predictor.from_pretrained(release, device="cpu")


def _special_path(kind: str, tmp_path: Path) -> str:
    if kind == "directory":
        return str(tmp_path)
    if kind == "missing":
        return str(tmp_path / "missing.png")
    if kind == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
        return str(tmp_path / "empty.png")
    return kind  # a device


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (None, "no image was given"),
        (3.5, "cannot read an image from a float: pass a path, a PIL image, encoded bytes, a numpy HxWxC"),
        ({"image": 1}, "cannot read an image from a dict"),
        ([np.zeros((8, 8, 3), np.uint8)], "cannot read an image from a list"),
        (b"", "no image was given"),
        (b"<html>404</html>", "the file is not a readable image (UnidentifiedImageError)"),
        (np.zeros((0, 0, 3), np.uint8), "the image is 0x0x3: it has no pixels to classify"),
        (np.zeros((5, 0), np.uint8), "the image is 5x0: it has no pixels to classify"),
        (Image.new("RGB", (0, 0)), "the image is 0x0 pixels: it has no pixels to classify"),
        (np.full((8, 8, 3), 2.0), "a float64 image array must hold values in [0, 1] (this one: 2.0 to 2.0)"),
        (np.full((8, 8, 3), np.nan, np.float32), "a float32 image array must hold values in [0, 1]"),
        (np.full((8, 8, 3), -0.5, np.float32), "(this one: -0.5 to -0.5): scale it, or pass uint8 (0-255)"),
        (np.zeros((8, 8, 3), np.int64), "image arrays of dtype int64 are not supported: pass uint8 (0-255)"),
        (np.zeros((8, 8, 3), bool), "image arrays of dtype bool are not supported"),
        (
            np.zeros((2, 8, 8, 3), np.uint8),
            "an array of shape 2x8x8x3 is not an image: expected HxW or HxWxC",
        ),
        (np.zeros((8, 8, 5), np.uint8), "an array of shape 8x8x5 is not an image"),
        (np.zeros(8, np.uint8), "an array of shape 8 is not an image"),
        (torch.zeros(1, 3, 8, 8), "a tensor of shape (1, 3, 8, 8) is not an image: expected CxHxW"),
        (torch.zeros(8, 8, 3), "a tensor of shape (8, 8, 3) is not an image"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "image tensors of dtype torch.int64 are not supported"),
        (torch.full((3, 8, 8), 3.0), "a float32 image array must hold values in [0, 1]"),
        ("directory", "is a directory, not an image file"),
        ("missing", "missing.png' (No such file or directory)"),
        ("empty", "the file is empty (0 bytes)"),
        ("/dev/null", "'/dev/null' is a character device, not an image file"),
        ("/dev/zero", "'/dev/zero' is a character device, not an image file"),
    ],
    ids=lambda v: None if not isinstance(v, np.ndarray | torch.Tensor) else f"{v.dtype} {tuple(v.shape)}",
)
def test_predictor_refuses_what_is_not_an_image_by_name(predictor, given, message, tmp_path) -> None:
    from tl_hub.errors import ImageError

    if isinstance(given, str):
        given = _special_path(given, tmp_path)
    for call in (
        lambda: predictor(given),
        lambda: predictor.predict([given]),
        lambda: predictor.explain(given),
    ):
        with pytest.raises(ImageError) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_a_named_pipe_is_refused_without_opening_it(release: Path, tmp_path: Path) -> None:
    """Opening a pipe for reading waits for a writer: Image.open blocked forever on one."""
    import os

    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    code = (
        "import sys; from tl_hub import Predictor; from tl_hub.errors import ImageError\n"
        "p = Predictor.from_pretrained(sys.argv[1], device='cpu')\n"
        "try:\n    p(sys.argv[2])\nexcept ImageError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(release), str(pipe)], capture_output=True, text=True, timeout=60
    )
    assert f"{str(pipe)!r} is a named pipe, not an image file" in done.stdout, done.stderr[-2000:]


def test_predictor_accepts_every_documented_kind_of_image_alike(predictor, tmp_path: Path) -> None:
    from .conftest import png_bytes

    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(pixels))
    same = [
        pixels,
        pixels / 255.0,
        (pixels / 255.0).astype(np.float32),
        torch.from_numpy(pixels).permute(2, 0, 1),
        torch.from_numpy(pixels).permute(2, 0, 1) / 255.0,
        Image.fromarray(pixels),
        png_bytes(pixels),
        bytearray(png_bytes(pixels)),
        str(tmp_path / "a.png"),
        tmp_path / "a.png",
    ]
    expected = predictor.logits([pixels])
    for given in same:
        assert torch.allclose(predictor.logits([given]), expected, atol=1e-5), type(given)
    gray = pixels[:, :, 0]
    assert torch.equal(predictor.logits([gray[:, :, None]]), predictor.logits([gray]))
    assert len(predictor(np.dstack([pixels, np.full((20, 24), 255, np.uint8)]), top_k=3)) == 3  # RGBA
    assert predictor.predict([]) == [] and predictor.logits([]).shape == (0, 43)
    assert len(predictor(pixels, top_k=np.int64(2))) == 2 and len(predictor(pixels, top_k=1000)) == 43


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, x: p(x, top_k=-1), "top_k=-1 is invalid: expected a positive integer"),
        (lambda p, x: p(x, top_k=0), "top_k=0 is invalid"),
        (lambda p, x: p(x, top_k="5"), "top_k='5' is invalid"),
        (lambda p, x: p(x, top_k=True), "top_k=True is invalid"),
        (lambda p, x: p(x, top_k=2.0), "top_k=2.0 is invalid"),
        (lambda p, x: p(x, top_k=None), "top_k=None is invalid"),
        (
            lambda p, x: p.explain(x, class_index=999),
            "class_index=999 is invalid: expected a class index from 0 ",
        ),
        (lambda p, x: p.explain(x, class_index=-1), "class_index=-1 is invalid"),
        (lambda p, x: p.explain(x, class_index=True), "class_index=True is invalid"),
        (lambda p, x: p.explain(x, class_index="3"), "class_index='3' is invalid"),
        (lambda p, x: p.explain(x, size=0), "size=0 is invalid: expected an integer from 8 to 4096"),
        (lambda p, x: p.explain(x, size=10**6), "size=1000000 is invalid"),
        (lambda p, x: p.predict(x), "images: expected a list of images, got a ndarray"),
        (lambda p, x: p.predict("a.png"), "images: expected a list of images, got a str"),
    ],
    ids=lambda v: None,
)
def test_predictor_arguments_out_of_range_are_a_value_error_naming_them(predictor, call, message) -> None:
    with pytest.raises(ValueError) as error:
        call(predictor, np.zeros((8, 8, 3), np.uint8))
    assert message in str(error.value)


def _pipe_in(root: Path) -> Path:
    import os

    folder = image_folder(root, {"cat": 3, "dog": 3})
    os.mkfifo(folder / "train" / "dog" / "3.png")  # a named pipe: opening it would block forever
    return folder


def _dangling_link_in(root: Path) -> Path:
    folder = image_folder(root, {"cat": 3, "dog": 3})
    (folder / "train" / "dog" / "3.png").symlink_to(root / "nowhere.png")
    return folder


@pytest.mark.parametrize("make", [_pipe_in, _dangling_link_in], ids=["a named pipe", "a dangling link"])
@pytest.mark.parametrize("script", ["train", "evaluate"])
def test_an_image_folder_file_that_is_not_a_regular_file_is_refused_without_opening_it(
    make, script, release, monkeypatch, capsys, tmp_path
) -> None:
    data = make(tmp_path / "data")
    if script == "train":
        args = [TRAIN, ["--dataset", str(data), "--output-dir", str(tmp_path / "run"), "--epochs", "1"]]
    else:
        args = [EVALUATE, [str(release), "--dataset", str(data), "--split", "train"]]
    code, err = run_script(*args, monkeypatch, capsys)
    assert code == 2
    assert "image file 'train/dog/3.png' is not a regular file (a pipe, a device or a dangling link)" in err
    assert not (tmp_path / "run").exists()
