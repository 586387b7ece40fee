"""The real entry points under `accelerate launch`, on a few hundred tiny synthetic signs."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tl_hub import Predictor
from tl_hub.release.files import EXAMPLES_DIR, MAX_EXAMPLES

from .conftest import ROOT, trained_release_files

pytestmark = pytest.mark.slow

TINY = ["--dataset", "synthetic", "--synthetic-per-class", "8", "--batch-size", "32", "--seed", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(threads: int = 1) -> dict[str, str]:
    """The environment of a script run in a child process: offline, no progress bars, `threads` threads."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


def launch(
    script: str, args: list[str], processes: int = 1, use_cpu: bool = True, check: bool = True, **kwargs
) -> subprocess.CompletedProcess | subprocess.Popen:
    """`accelerate launch` on the CPU with `processes` processes.

    `--cpu` runs one process whatever `--num_processes` says (several need MPI); the torchrun launcher
    behind `--multi_gpu`, told by ACCELERATE_USE_CPU to use the CPU, starts them as one gloo group
    (`use_cpu=False` leaves that out). `check` asserts the launch succeeded.
    """
    # One process gets the machine's cores, as the README's launch command gives it; several get one each.
    threads = max(1, len(os.sched_getaffinity(0)) // processes)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu" if processes == 1 else "--multi_gpu",
        "--num_cpu_threads_per_process",
        str(threads),
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(ROOT / "scripts" / script),
        *args,
    ]
    env = child_env(threads)
    env.pop("ACCELERATE_USE_CPU", None)
    if processes > 1 and use_cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    if kwargs.pop("background", False):
        # A session of its own, so that the launcher and its workers can be killed together.
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300))
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("e2e") / "run"
    result = launch("train.py", [*TINY, "--epochs", "2", "--output-dir", str(out)])
    return out, result.stdout


def test_accelerate_launch_train_writes_a_complete_release(trained: tuple[Path, str]) -> None:
    out, stdout = trained
    model_dir = out / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == trained_release_files()
    # The Space's examples: validation images, 8 classes of the 43 spread over them, named by their label.
    examples = sorted(p.name for p in (model_dir / EXAMPLES_DIR).iterdir())
    assert len(examples) == MAX_EXAMPLES and examples[0].startswith("00-") and examples[0].endswith(".jpg")
    assert "epoch 1/2: train loss" in stdout and "epoch 2/2" in stdout and "validation loss" in stdout
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["test"]["num_samples"] == 43 * 2 and len(metrics["test"]["confusion_matrix"]) == 43
    # Resume state lives beside the release, never inside it.
    assert (out / "checkpoints").is_dir() and not list(model_dir.glob("*.bin"))
    predictor = Predictor.from_pretrained(model_dir)
    assert len(predictor.label_names) == 43


def test_two_processes_report_the_same_metrics_as_one(trained: tuple[Path, str], tmp_path: Path) -> None:
    model_dir = trained[0] / "model"
    results = {}
    for n in (1, 2):
        launch(
            "evaluate.py",
            [
                str(model_dir),
                "--dataset",
                "synthetic",
                "--split",
                "validation",
                "--batch-size",
                "7",
                "--output",
                str(tmp_path / f"{n}.json"),
            ],
            processes=n,
        )
        results[n] = json.loads((tmp_path / f"{n}.json").read_text())
    assert results[2]["num_samples"] == results[1]["num_samples"] == 43 * 50  # no padded duplicates counted
    for key in ("accuracy", "macro_f1", "top5_accuracy", "confusion_matrix"):
        assert results[2][key] == results[1][key]
    assert results[2]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)


def test_evaluate_update_card_records_the_result_in_facts_and_card(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    from huggingface_hub import ModelCard

    release = tmp_path / "copy" / "model"
    shutil.copytree(trained[0] / "model", release)
    before = json.loads((release / "facts.json").read_text())["results"]
    args = [str(release), "--dataset", "synthetic", "--split", "validation", "--batch-size", "64"]
    launch("evaluate.py", [*args, "--output", str(tmp_path / "m.json"), "--update-card"])
    scored = json.loads((tmp_path / "m.json").read_text())
    results = json.loads((release / "facts.json").read_text())["results"]
    # The split scored again replaces training's figure for it; the others stay.
    assert len(results) == len(before)
    mine = next(r for r in results if r["split"] == "validation")
    assert mine["scored_by"] == "scripts/evaluate.py" and mine["num_samples"] == 43 * 50
    assert mine["accuracy"] == pytest.approx(scored["accuracy"])
    card = ModelCard.load(release / "README.md")
    figures = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert figures[("validation", "accuracy")] == pytest.approx(scored["accuracy"], abs=1e-4)
    assert str(tmp_path) not in (release / "README.md").read_text()


def test_update_card_refuses_a_hub_repo_before_scoring() -> None:
    args = ["someone/repo", "--dataset", "synthetic", "--update-card"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--update-card: 'someone/repo' is not a local release directory" in result.stderr


def test_two_process_training_produces_a_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    args = [*TINY, "--epochs", "1", "--image-cache", "disk", "--output-dir", str(out)]
    result = launch("train.py", args, processes=2)
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["validation"]["num_samples"] == 43 * 2
    assert result.stdout.count("epoch 1/1: train loss") == 1  # logged by the main process only
    assert "2 processes (MULTI_CPU): global batch 32 = 2 x 16" in result.stdout
    # One disk image cache for both processes: one complete entry per split, nothing half-written.
    entries = list((tmp_path / "cache" / "images").iterdir())
    assert len(entries) == 3 and all((e / "meta.json").exists() for e in entries)


def test_a_killed_run_resumes_to_the_uninterrupted_metrics(tmp_path: Path) -> None:
    args = [*TINY, "--synthetic-per-class", "12", "--epochs", "3"]
    reference = tmp_path / "reference"
    launch("train.py", [*args, "--output-dir", str(reference)])

    out = tmp_path / "interrupted"
    proc = launch("train.py", [*args, "--output-dir", str(out)], background=True)
    marker = out / "checkpoints" / "epoch_001" / "trainer_state.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash: no clean-up code runs
    proc.wait(timeout=30)
    assert not (out / "model").exists(), "the run finished before it could be killed"

    resumed = launch("train.py", [*args, "--output-dir", str(out), "--resume"])
    assert "resumed from" in resumed.stdout and "epoch_00" in resumed.stdout
    assert "epoch 1/3" not in resumed.stdout
    ours = json.loads((out / "model" / "metrics.json").read_text())
    theirs = json.loads((reference / "model" / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert ours[split]["accuracy"] == theirs[split]["accuracy"]
        assert ours[split]["confusion_matrix"] == theirs[split]["confusion_matrix"]
    assert [h["val_loss"] for h in ours["history"]] == pytest.approx(
        [h["val_loss"] for h in theirs["history"]]
    )


@pytest.fixture(scope="module")
def pets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image folder of 'cats' (warm) and 'dogs' (cool) JPEGs of assorted sizes, with a test split."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for name, colour in (("cat", (200, 120, 40)), ("dog", (50, 80, 200))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                size = (60 + 7 * i, 45 + 5 * i, 3)
                pixels = rng.integers(0, 50, size) + np.array(colour)
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg")
    return root


def test_vgg16_recipe_end_to_end_with_a_feature_cache_rerun(
    pets_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    args = [
        "--recipe",
        "vgg16-catsdogs",
        "--dataset",
        str(pets_dir),
        "--no-pretrained",
        "--epochs",
        "2",
        "--train-size",
        "8",
        "--val-size",
        "4",
        "--batch-size",
        "4",
    ]
    first = launch("train.py", [*args, "--output-dir", str(tmp_path / "a")])
    assert "computed in" in first.stdout and "feature cache hit" not in first.stdout
    assert (
        "strategy feature-extract, epoch 1: 6,430,978 trainable / 15,767,360 frozen parameters"
        in first.stdout
    )
    model_dir = tmp_path / "a" / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == trained_release_files()
    predictor = Predictor.from_pretrained(model_dir)
    top = predictor(pets_dir / "test" / "cat" / "0.jpg", top_k=2)
    assert set(top) == {"cat", "dog"} and sum(top.values()) == pytest.approx(1.0)
    assert predictor.preprocess.input_size == 224 and predictor.preprocess.crop_pct == 0.875

    second = launch("train.py", [*args, "--output-dir", str(tmp_path / "b")])
    assert second.stdout.count("feature cache hit") == 3  # train, validation, test: the base never ran
    ours = json.loads((tmp_path / "b" / "model" / "metrics.json").read_text())
    theirs = json.loads((model_dir / "metrics.json").read_text())
    assert ours["test"]["confusion_matrix"] == theirs["test"]["confusion_matrix"]


def test_init_from_a_release_fine_tunes_on_a_new_label_set(
    release: Path, parquet_dir: Path, tmp_path: Path
) -> None:
    result = launch(
        "train.py",
        [
            "--dataset",
            str(parquet_dir),
            "--init-from",
            str(release),
            "--strategy",
            "finetune-top",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--output-dir",
            str(tmp_path / "run"),
        ],
    )
    assert "43 classes there, 5 here: the classifier starts fresh" in result.stdout
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    # The release names its start by the directory's public name and the weights' sha256, not by a path.
    name = f"{release.parent.name}/model"
    assert config["num_classes"] == 5 and config["training"]["transfer"]["init_from"] == name
    start = json.loads((tmp_path / "run" / "model" / "facts.json").read_text())["start"]
    assert start["kind"] == "release" and start["name"] == name
    assert start["sha256"] == hashlib.sha256((release / "model.safetensors").read_bytes()).hexdigest()
    assert str(tmp_path) not in (tmp_path / "run" / "model" / "config.json").read_text()


def test_finetune_top_under_two_processes_keeps_the_replicas_identical(release: Path, tmp_path: Path) -> None:
    # DDP synchronizes only what required grad when it wrapped the model; the last conv block unfreezes
    # after the warm-up (5 epochs) and must be averaged across processes all the same.
    args = [*TINY, "--init-from", str(release), "--strategy", "finetune-top", "--epochs", "7"]
    result = launch("train.py", [*args, "--output-dir", str(tmp_path / "run")], processes=2)
    assert "2 processes (MULTI_CPU)" in result.stdout
    assert "strategy finetune-top, epoch 6: 64,355 trainable / 156 frozen parameters" in result.stdout
    assert "weights differ" not in result.stdout + result.stderr


def test_processes_that_accelerate_leaves_unconnected_are_refused(tmp_path: Path) -> None:
    # Without ACCELERATE_USE_CPU, the torchrun launcher's processes find no GPU and run alone.
    args = [*TINY, "--output-dir", str(tmp_path / "run")]
    result = launch("train.py", args, processes=2, use_cpu=False, check=False)
    assert result.returncode != 0
    assert "error: 2 processes were launched but Accelerate runs each alone (no GPU)" in result.stderr
    assert not (tmp_path / "run" / "model").exists()


def test_a_release_trained_from_a_local_file_holds_no_path_of_the_machine(tmp_path: Path) -> None:
    """Trained as a user runs it, from weights under a long directory of this machine: the release names
    the file by its name and sha256, and no file of it (card, config, metrics, facts) holds the path."""
    import timm
    from huggingface_hub import ModelCard
    from safetensors.torch import save_file

    machine = tmp_path / ("weights-of-this-machine-" + "y" * 60) / "deeper"
    machine.mkdir(parents=True)
    weights = machine / "model.safetensors"
    save_file(timm.create_model("test_efficientnet", pretrained=False).state_dict(), weights)
    args = ["--model", "test_efficientnet", "--pretrained-file", str(weights), "--input-size", "32"]
    args += [*TINY[:4], "--epochs", "1", "--output-dir", "run"]
    env = child_env()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    release = tmp_path / "run" / "model"
    for path in release.iterdir():
        if path.suffix in (".md", ".json"):
            assert "weights-of-this-machine" not in path.read_text() and str(tmp_path) not in path.read_text()
    card = ModelCard.load(release / "README.md")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"| initial weights | the weights file model.safetensors (sha256 {digest[:16]}..." in card.text
    assert card.data.library_name == "timm" and 'Predictor.from_pretrained("run/model")' in card.text
    assert (
        json.loads((release / "config.json").read_text())["training"]["model"]["pretrained"] == weights.name
    )


def machine(rank: int, port: int, args: list[str], log: Path) -> subprocess.Popen:
    """One of two "machines" on localhost, one process each, started as the README's multi-machine command
    (`--num_processes` counts the processes of every machine; ACCELERATE_USE_CPU: gloo on the CPU)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2"]
    cmd += ["--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1"]
    cmd += ["--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = child_env()
    env["ACCELERATE_USE_CPU"] = "true"
    with log.open("w") as out:
        return subprocess.Popen(
            [*cmd, str(ROOT / "scripts" / "train.py"), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_two_machines_of_one_process_train_what_one_machine_of_two_does(tmp_path: Path) -> None:
    from .test_bad_inputs import assert_same_weights

    args = [*TINY, "--epochs", "2"]
    launch("train.py", [*args, "--output-dir", str(tmp_path / "one")], processes=2)
    port = free_port()
    # Both "machines" see one filesystem, as a cluster's shared one: one run directory, written by rank 0.
    two = [*args, "--output-dir", str(tmp_path / "two")]
    procs = [machine(rank, port, two, tmp_path / f"machine-{rank}.log") for rank in (0, 1)]
    for rank, proc in enumerate(procs):
        assert proc.wait(timeout=300) == 0, (tmp_path / f"machine-{rank}.log").read_text()[-3000:]
    assert "2 processes (MULTI_CPU): global batch 32 = 2 x 16" in (tmp_path / "machine-0.log").read_text()
    assert "epoch 1/2" not in (tmp_path / "machine-1.log").read_text()  # only the main process logs
    # Tolerance 0: the same two ranks train the same shards; gloo's all-reduce of two numbers is one
    # addition, the same in either order, whether the other rank is a local process or another machine.
    assert_same_weights(tmp_path / "one" / "model", tmp_path / "two" / "model")
    ours = json.loads((tmp_path / "two" / "model" / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "one" / "model" / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert ours[split] == theirs[split]
    assert [h["train_loss"] for h in ours["history"]] == [h["train_loss"] for h in theirs["history"]]


def test_two_processes_stream_uneven_shards_to_the_same_steps(tmp_path: Path) -> None:
    from .test_store import photo_dataset
    from .test_streaming import write_splits

    # two files of 53 and 67 photos, one an unreadable image: each process its own file
    data = write_splits(tmp_path / "stream", photo_dataset(120, broken=(3,)), files=2)
    args = ["--recipe", "cnn-gtsrb", "--dataset", str(data), "--streaming", "--val-size", "10"]
    args += ["--batch-size", "16", "--epochs", "1", "--input-size", "24", "--crop-pct", "0.8"]
    args += ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--output-dir", str(tmp_path / "run")]
    result = launch("train.py", args, processes=2, timeout=120)  # no process waits for a step never taken
    assert "2 processes (MULTI_CPU)" in result.stdout and "epoch 1/1: train loss" in result.stdout
    assert "weights differ" not in result.stdout + result.stderr
