"""Comparisons of transfer-learning arms (tl_hub.experiments.compare, scripts/compare.py) on tiny images."""

from __future__ import annotations

import json
import logging
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tl_hub.experiments.compare as compare
from tl_hub.accelerator import make_accelerator
from tl_hub.config import RunConfig
from tl_hub.data.loading import prepare_data
from tl_hub.errors import ConfigError, DatasetError
from tl_hub.experiments.compare import Comparison
from tl_hub.experiments.report import CURVES_PLOT, SIZES_PLOT, write_report
from tl_hub.inference.evaluate import match_labels
from tl_hub.recipes import get_recipe

from .conftest import NUM_CLASSES, ROOT, trained_release_files
from .test_cli import TRAIN, run_script
from .test_e2e import launch

COMPARE = ROOT / "scripts" / "compare.py"
ENTRY_KEYS = {
    "arm",
    "size",
    "seed",
    "strategy",
    "init",
    "dataset",
    "train_size",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "run_dir",
    "counts",
    "validation_from",
    "fingerprints",
    "history",
    "train_seconds",
    "mixed_precision",
    "validation",
}


def lenet_on(dataset: Path, epochs: int = 2) -> RunConfig:
    return get_recipe("lenet-gtsrb").config.replace(
        {"data.dataset": str(dataset), "train.epochs": epochs, "train.batch_size": 16}
    )


def run_comparison(comparison: Comparison, output_dir: Path) -> dict:
    """What scripts/compare.py does: one Accelerator for the process, the comparison, the end."""
    accelerator = make_accelerator()
    results = compare.run_comparison(comparison, output_dir, accelerator)
    accelerator.end_training()
    return results


def tiny(dataset: Path, release: Path, **kwargs) -> Comparison:
    """Two arms, two sizes, one seed: scratch, and finetune-all from a 43-class release."""
    return Comparison(
        **{
            "base": lenet_on(dataset),
            "arms": ("scratch", "finetune-all"),
            "sizes": (2, "all"),
            "seeds": (0,),
            "init_from": str(release),
            **kwargs,
        }
    )


def test_the_smallest_comparison_trains_records_and_reports(
    parquet_dir: Path, release: Path, tmp_path: Path
) -> None:
    """The fast tier's comparison (the tests of `compared` below run two arms at two sizes, and resume)."""
    comparison = tiny(
        parquet_dir, release, base=lenet_on(parquet_dir, epochs=1), arms=("scratch",), sizes=(2,)
    )
    run_comparison(comparison, tmp_path / "report")
    (entry,) = results_of(tmp_path / "report")["results"]
    assert entry.keys() >= ENTRY_KEYS and (entry["arm"], entry["size"], entry["epochs"]) == ("scratch", 2, 1)
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, parquet_dir: Path, release: Path) -> Path:
    out = tmp_path_factory.mktemp("compare") / "report"
    run_comparison(tiny(parquet_dir, release), out)
    return out


@pytest.fixture
def compared_copy(compared: Path, tmp_path: Path) -> Path:
    """A copy of the finished comparison to rerun, crash or extend."""
    out = tmp_path / "report"
    shutil.copytree(compared, out)
    return out


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_results_json_records_every_run_with_its_settings(compared: Path, release: Path) -> None:
    results = results_of(compared)
    assert results["num_classes"] == NUM_CLASSES and results["settings"]["recipe"] == "lenet-gtsrb"
    assert results["settings"]["run"]["train"]["epochs"] == 2 and results["settings"]["init_from"] == str(
        release
    )
    entries = {(e["arm"], e["size"]): e for e in results["results"]}
    assert set(entries) == {("finetune-all", 2), ("finetune-all", "all"), ("scratch", 2), ("scratch", "all")}
    for (arm, size), e in entries.items():
        assert set(e) == ENTRY_KEYS, set(e) ^ ENTRY_KEYS  # the parquet fixture has no test split
        assert e["strategy"] == arm and e["seed"] == 0
        # as the release records its start (facts.json): by a public name, not a path of this machine
        assert e["init"] == (
            "random weights" if arm == "scratch" else f"the tl_hub release `{release.parent.name}/model`"
        )
        assert (e["epochs"], e["batch_size"], e["lr"], e["optimizer"]) == (2, 16, 1e-3, "adam")
        # 12 images per class, a track of 3 held out for validation: 9 left, 2 per class sampled.
        assert e["train_size"] == (None if size == "all" else 2 * NUM_CLASSES)
        assert e["counts"] == {"train": 9 * NUM_CLASSES if size == "all" else 10, "validation": 15}
        assert [h["epoch"] for h in e["history"]] == [1, 2] and e["train_seconds"] > 0
        # The numbers are the release's own.
        release_dir = compared / e["run_dir"] / "model"
        assert sorted(p.name for p in release_dir.iterdir()) == trained_release_files()
        metrics = json.loads((release_dir / "metrics.json").read_text())
        assert e["validation"]["accuracy"] == metrics["validation"]["accuracy"]
        assert e["validation"]["num_samples"] == 15
        assert e["history"] == metrics["history"]
        assert e["mixed_precision"] == metrics["mixed_precision"] == "no"  # Accelerate's, as trained
        config = json.loads((release_dir / "config.json").read_text())["training"]
        assert config["transfer"]["strategy"] == arm and config["train"]["seed"] == 0


@pytest.mark.slow
def test_every_arm_and_size_is_scored_on_the_same_validation_images(
    compared: Path, parquet_dir: Path
) -> None:
    entries = results_of(compared)["results"]
    assert len({e["fingerprints"]["validation"] for e in entries}) == 1
    # ... the split prepare_data carves with the seed, whatever the training-set size.
    run = lenet_on(parquet_dir)
    direct = prepare_data(run.data, run.preprocess, seed=0)
    assert entries[0]["fingerprints"]["validation"] == direct.validation.fingerprint()
    # The arms of one size train on the same images; the sizes differ.
    train = {(e["arm"], e["size"]): e["fingerprints"]["train"] for e in entries}
    assert train["scratch", 2] == train["finetune-all", 2] != train["scratch", "all"]
    assert train["scratch", "all"] == train["finetune-all", "all"] == direct.train.fingerprint()


@pytest.mark.slow
def test_report_and_plots(compared: Path, parquet_dir: Path) -> None:
    report = (compared / "report.md").read_text()
    assert "| arm | 2/class | all |" in report
    assert report.startswith(
        f"# Transfer-learning comparison: lenet-gtsrb on {parquet_dir.name}\n"
    )  # not its path
    assert "- seed 0, validation: the same 15 images in all 4 runs" in report
    assert "a bug" not in report
    results = results_of(compared)["results"]
    scratch = {e["size"]: e["validation"]["accuracy"] for e in results if e["arm"] == "scratch"}
    assert f"| scratch | {scratch[2]:.3f} (1 seed) | {scratch['all']:.3f} (1 seed) |" in report
    for plot in (CURVES_PLOT, SIZES_PLOT):
        assert f"]({plot})" in report
        with Image.open(compared / plot) as image:
            assert image.format == "PNG" and image.width > 400


@pytest.mark.slow
def test_a_rerun_skips_finished_arms(
    compared_copy: Path, parquet_dir: Path, release: Path, monkeypatch, caplog
) -> None:
    before = results_of(compared_copy)
    (compared_copy / "report.md").unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished arm was trained again")

    monkeypatch.setattr(compare, "train", no_training)
    with caplog.at_level(logging.INFO):
        run_comparison(tiny(parquet_dir, release), compared_copy)
    assert "4 runs (4 already recorded, 0 to do)" in caplog.text
    assert results_of(compared_copy)["results"] == before["results"]
    assert (compared_copy / "report.md").exists()  # rewritten from results.json


@pytest.mark.slow
def test_a_crashed_arm_resumes_and_a_finished_unrecorded_one_is_collected(
    compared_copy: Path, parquet_dir: Path, release: Path, monkeypatch, caplog
) -> None:
    results = results_of(compared_copy)
    before = {(e["arm"], e["size"]): e for e in results["results"]}
    # A crash after the release of ("scratch", 2) was written, before results.json recorded it; and a crash
    # of ("finetune-all", "all") after its last checkpoint, before its release.
    results["results"] = [
        e for e in results["results"] if (e["arm"], e["size"]) in {("scratch", "all"), ("finetune-all", 2)}
    ]
    (compared_copy / "results.json").write_text(json.dumps(results))
    shutil.rmtree(compared_copy / before["finetune-all", "all"]["run_dir"] / "model")

    trained = []
    real_train = compare.train

    def spy(run, output_dir, accelerator, **kwargs):
        trained.append((Path(output_dir), kwargs["resume"]))
        return real_train(run, output_dir, accelerator, **kwargs)

    monkeypatch.setattr(compare, "train", spy)
    with caplog.at_level(logging.INFO):
        run_comparison(tiny(parquet_dir, release), compared_copy)
    assert trained == [(compared_copy / "runs" / "finetune-all" / "size-all" / "seed-0", True)]
    assert "resumed from" in caplog.text
    after = {(e["arm"], e["size"]): e for e in results_of(compared_copy)["results"]}
    assert after.keys() == before.keys()
    for key in before:
        assert after[key]["validation"] == pytest.approx(before[key]["validation"])
        assert after[key]["fingerprints"] == before[key]["fingerprints"]


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused_and_one_with_more_arms_adds_them(
    compared_copy: Path, parquet_dir: Path, release: Path, monkeypatch, tmp_path: Path
) -> None:
    other = tiny(parquet_dir, release, base=lenet_on(parquet_dir, epochs=3))
    with pytest.raises(ConfigError, match=r"other settings \(run\.train\.epochs: 2 -> 3\)"):
        run_comparison(other, compared_copy)
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    more = tiny(parquet_dir, release, arms=("scratch", "feature-extract", "finetune-all"), sizes=(2,))
    run_comparison(more, compared_copy)
    entries = results_of(compared_copy)["results"]
    assert len(entries) == 5 and entries[-1]["arm"] == "feature-extract" and entries[-1]["size"] == 2
    assert len({e["fingerprints"]["validation"] for e in entries}) == 1
    assert "| feature-extract |" in (compared_copy / "report.md").read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"arms": ("scratch", "warm-start")},
            "unknown arm 'warm-start': choose from scratch, feature-extract",
        ),
        ({"arms": ("source-only",), "init_from": None}, "arm source-only scores a source model"),
        ({"init_from": None}, "arm finetune-all needs a pretrained start and recipe lenet-gtsrb has none"),
        ({"source_dataset": "synthetic"}, "--source-dataset and --init-from both name the source model"),
        ({"sizes": (0,)}, "size 0 is not a positive number of images per class or 'all'"),
        ({"seeds": ()}, "seeds is empty"),
    ],
)
def test_bad_comparisons_are_named(kwargs: dict, message: str, parquet_dir: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny(parquet_dir, parquet_dir, **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--arms", "scratch,bogus"],
            "argument --arms: unknown arm 'bogus': choose from scratch, feature-extract",
        ),
        (["--arms", "scratch,scratch"], "argument --arms: 'scratch,scratch' repeats a value"),
        (["--sizes", "10,abc"], "argument --sizes: 'abc' is neither a positive integer nor 'all'"),
        (["--sizes", "0"], "argument --sizes: 0 must be a positive integer"),
        (["--seeds", "-1"], "argument --seeds: -1 must be 0 or more"),
        (["--arms", "scratch,source-only"], "arm source-only scores a source model: pass --source-dataset"),
        (["--arms", "finetune-top"], "arm finetune-top needs a pretrained start"),
        (["--recipe", "resnet"], "unknown recipe 'resnet'"),
        (["--seeds", "0,4294968"], "seed=4294968 is invalid: expected an integer from 0 to 4294965"),
        (["--source-epochs", "0"], "epochs=0 is invalid: expected a positive integer"),
        (["--seed", "1"], "unrecognized arguments: --seed 1"),
        (
            ["--no-pretrained", "--pretrained-file", "w.pth"],
            "--no-pretrained and --pretrained-file contradict",
        ),
    ],
)
def test_compare_rejects_bad_input_in_one_line(args, message, monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(COMPARE, [*args, "--output-dir", str(tmp_path / "report")], monkeypatch, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--epochs", "0"],
        ["--lr", "inf"],
        ["--batch-size", "x"],
        ["--cache-views", "-2"],
        ["--val-size", "0"],
        ["--synthetic-per-class", "-1"],
    ],
)
def test_train_and_compare_refuse_a_shared_flag_with_the_same_words(
    args, monkeypatch, capsys, tmp_path
) -> None:
    # One flag table: a training flag means, accepts and refuses the same in both scripts.
    errors = []
    for script in (TRAIN, COMPARE):
        code, err = run_script(script, [*args, "--output-dir", str(tmp_path / "out")], monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        errors.append(err)
    assert errors[0] == errors[1]


def test_write_report_averages_over_seeds_and_flags_a_split_mismatch(tmp_path: Path) -> None:
    def entry(arm: str, size, seed: int, curve: list[float], validation: str = "v") -> dict:
        history = [{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(curve)]
        return {
            "arm": arm,
            "size": size,
            "seed": seed,
            "history": history,
            "validation": {"accuracy": curve[-1] if curve else 0.25},
            "counts": {"train": 40 if size == "all" else 2 * size, "validation": 8},
            "fingerprints": {"validation": validation, "train": f"{size}-{seed}"},
            "validation_from": "10% of train",
            "train_seconds": 1.0,
            "mixed_precision": "bf16",
        }

    results = {
        "settings": {
            "recipe": "lenet-gtsrb",
            "dataset": "d",
            "source_dataset": None,
            "init_from": "src",
            "source_epochs": None,
            "run": {
                "train": {"epochs": 3, "batch_size": 8, "optimizer": "adam", "lr": 1e-3},
                "transfer": {"head_epochs": 2, "top_lr_scale": 0.1, "base_lr_scale": 0.5},
            },
        },
        "num_classes": 2,
        "sources": [],
        "results": [
            entry("source-only", 0, 0, []),
            entry("scratch", 5, 0, [0.2, 0.4, 0.6]),
            entry("scratch", 5, 1, [0.2, 0.4, 0.4]),
            entry("finetune-all", 5, 0, [0.6, 0.8, 0.8]),
            entry("finetune-all", 5, 1, [0.6, 0.7, 0.8], validation="other"),
            entry("scratch", "all", 0, [0.5, 0.7, 0.9]),
        ],
    }
    report = write_report(results, tmp_path).read_text()
    assert "| arm | 0 (no target images) | 5/class | all |" in report
    assert "| scratch | - | 0.500 ± 0.141 | 0.900 (1 seed) |" in report
    assert "| finetune-all | - | 0.800 ± 0.000 | - |" in report
    assert "| source-only | 0.250 (1 seed) | - | - |" in report
    # Mean curves: scratch 0.2, 0.4, 0.5; finetune-all 0.6, 0.75, 0.8. 95% of the best final (0.8) is 0.76.
    assert "| 5/class | scratch | 0.200 | - | 0.500 | - |" in report
    assert "| 5/class | finetune-all | 0.600 | 3 | 0.800 | +0.300 |" in report
    assert "**seed 1, validation: 2 different splits in 2 runs (a bug)**" in report
    # Which start wins, per size with two arms or more: finetune-all 0.800 against scratch 0.500 +- 0.141.
    winner = "| 5/class | finetune-all (0.800) | +30.0 points (finetune-all) | scratch, 30.0 points behind |"
    assert winner in report
    assert "| all |" not in report.split("## Which start wins")[1].split("##")[0]  # scratch alone
    # What trains when, from the shared transfer settings.
    assert "- scratch: every layer from epoch 1 at lr 0.001\n" in report
    schedule = "- finetune-all: the head from epoch 1 at lr 0.001; the whole base from epoch 1 at lr 0.0005"
    assert schedule in report
    assert "Mixed precision: bf16" in report
    assert (tmp_path / CURVES_PLOT).exists() and (tmp_path / SIZES_PLOT).exists()


@pytest.mark.slow
def test_accelerate_launch_two_processes_with_a_source_model_and_the_source_only_arm(
    parquet_dir: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    out = tmp_path / "report"
    args = [
        "--dataset",
        str(parquet_dir),
        "--source-dataset",
        "synthetic",
        "--synthetic-per-class",
        "4",
        "--arms",
        "finetune-top,source-only",
        "--sizes",
        "2",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
    ]
    result = launch("compare.py", args, processes=2)
    assert "2 processes (MULTI_CPU)" in result.stdout
    assert result.stdout.count("report written to") == 1  # by the main process only
    assert result.stdout.count("epoch 1/1: train loss") == 2  # the source model, then finetune-top
    results = results_of(out)
    source = out / "source" / "seed-1" / "model"
    assert sorted(p.name for p in source.iterdir()) == trained_release_files()
    assert (
        results["sources"][0]["dataset"] == "synthetic" and results["sources"][0]["counts"]["train"] == 4 * 43
    )
    only, top = results["results"]
    assert (only["arm"], only["size"], only["train_size"], only["history"]) == ("source-only", 0, 0, [])
    assert only["init"] == top["init"] == "the tl_hub release `seed-1/model`"
    # Scored, without training, on the validation images the trained arm is scored on, over its 5 classes.
    assert only["counts"] == {"validation": 15} and only["validation"]["num_samples"] == 15
    assert only["fingerprints"]["validation"] == top["fingerprints"]["validation"]
    assert 0 <= only["validation"]["accuracy"] <= 1

    # The same command again, here in this process: nothing left to train.
    monkeypatch.setattr(compare, "train", None)
    monkeypatch.setattr(sys, "argv", [str(COMPARE), *args])
    with caplog.at_level(logging.INFO):
        runpy.run_path(str(COMPARE), run_name="__main__")
    assert "2 runs (2 already recorded, 0 to do)" in caplog.text
    assert results_of(out)["results"] == results["results"]


@pytest.fixture(scope="module")
def pets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'cats' (warm) and 'dogs' (cool): 4 training and 1 test JPEG each."""
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 1)):
        for name, colour in (("cat", (200, 120, 40)), ("dog", (50, 80, 200))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 50, (40 + 3 * i, 30, 3)) + np.array(colour)
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg")
    return root


@pytest.mark.slow
def test_vgg16_catsdogs_compares_scratch_with_feature_extract(
    pets_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    recipe = get_recipe("vgg16-catsdogs").config
    base = recipe.replace(
        {
            "data.dataset": str(pets_dir),
            "data.val_size": 2,
            "train.epochs": 1,
            "train.batch_size": 2,
            "model.pretrained": None,  # --no-pretrained
        }
    )
    comparison = Comparison(base=base, arms=("scratch", "feature-extract"), sizes=(1,), seeds=(0,))
    results = run_comparison(comparison, tmp_path / "report")
    scratch, extract = results["results"]
    assert (scratch["arm"], scratch["init"]) == ("scratch", "random weights")
    assert (extract["strategy"], extract["init"]) == ("feature-extract", "random weights")  # --no-pretrained
    for e in (scratch, extract):
        assert e["counts"] == {"train": 2, "validation": 2, "test": 2} and e["test"]["num_samples"] == 2
        assert (e["epochs"], e["batch_size"], e["lr"], e["optimizer"]) == (1, 2, 1e-4, "sgd")
    assert scratch["fingerprints"] == extract["fingerprints"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Final test accuracy" in report and "| feature-extract |" in report


def test_source_classes_are_matched_by_name_or_by_number_never_by_position(caplog) -> None:
    gtsrb = ["Speed limit (20km/h)", "Speed limit (30km/h)", "Stop"]
    assert match_labels(["Stop", "Speed limit (20km/h)"], gtsrb) == [2, 0]
    with caplog.at_level(logging.WARNING):
        assert match_labels(["00000", "00001", "00002"], gtsrb) == [0, 1, 2]  # GTSRB's folder names
        assert match_labels(["2", "0"], gtsrb) == [2, 0]
    assert "'00000' = 'Speed limit (20km/h)'" in caplog.text
    with pytest.raises(DatasetError, match="the dataset's classes 'cat', 'dog' are not among the model's"):
        match_labels(["cat", "Stop", "dog"], gtsrb)
    with pytest.raises(DatasetError, match="the dataset's classes 'a', 'b', 'c' are not among the model's"):
        match_labels(["a", "b", "c"], gtsrb)  # as many classes, other names: no guess
    with pytest.raises(DatasetError, match="the dataset's classes '0', '3' are not among"):
        match_labels(["0", "3"], gtsrb)  # no class 3
    assert match_labels(["a", "b", "c"], gtsrb, "position") == [0, 1, 2]
    assert match_labels(["a", "Stop"], gtsrb, {"a": "Speed limit (30km/h)"}) == [1, 2]


@pytest.mark.slow
def test_the_card_the_space_and_the_report_tell_the_same_start_and_strategy(compared: Path) -> None:
    """Each arm's release read three ways: its model card, the Space's tab text, the comparison report."""
    import importlib.util
    import sys

    from tl_hub import Predictor
    from tl_hub.release.facts import load_facts

    spec = importlib.util.spec_from_file_location("tl_hub_space_app", ROOT / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app
    spec.loader.exec_module(app)
    report = (compared / "report.md").read_text()
    for entry in results_of(compared)["results"]:
        release = compared / entry["run_dir"] / "model"
        facts = load_facts(release)
        start = facts.start.describe()
        card = (release / "README.md").read_text()
        tab = app.model_summary(Predictor.from_pretrained(release), facts)
        arm_line = next(line for line in report.splitlines() if line.startswith(f"- {entry['arm']}: "))
        assert f"| initial weights | {start.replace('`', '')} |" in card
        assert f"| strategy | {facts.strategy}:" in card
        # the same schedule (what trains from which epoch at which rate) in the card and in the report
        schedule_line = [line for line in report.splitlines() if line.startswith(f"- {entry['arm']}: ")][1]
        assert f"| schedule | {schedule_line.split(': ', 1)[1]} |" in card
        assert f"strategy `{facts.strategy}` from {start}" in tab
        assert f"strategy `{facts.strategy}` from {start}" in arm_line
        assert entry["init"] == start and entry["strategy"] == facts.strategy
        headline = facts.headline()
        assert f"{headline.accuracy:.1%} on {headline.num_samples} images" in tab
        assert headline.accuracy == entry[headline.split]["accuracy"]
