"""Transfer-learning experiments: arms x training-set sizes x seeds, with one data split and one budget.

An arm is a starting point plus a strategy (tl_hub.training.strategies):

- `scratch`: random initial weights, every layer trains.
- `feature-extract`, `finetune-top`, `finetune-all`: that strategy from the pretrained start. The start is a
  source model trained here on `source_dataset` (one per seed, in DIR/source/seed-S/), or the release
  `init_from`, or else the recipe's pretrained base (ImageNet for vgg16-catsdogs).
- `source-only`: the source model as it is, scored on the target's validation and test images: the
  zero-target-image arm. Needs `source_dataset` or `init_from`.

Every arm of a seed is scored on the same validation (and test) images: `prepare_data` carves validation
from train with the seed before it draws the class-balanced training sample, so neither the arm nor the size
changes it. The fingerprints of the splits recorded for every run show it. Every arm gets the same epochs,
batch size and learning rate. A size is a number of training images per class, or "all".

The report directory DIR holds results.json (every number and the settings that produced it; the record a
rerun resumes from), report.md and its plots (tl_hub.experiments.report), the source runs, and each arm's run
directory DIR/runs/ARM/size-N/seed-S/ with its full release in model/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from tqdm.contrib.logging import logging_redirect_tqdm

from tl_hub import __version__
from tl_hub.config import RunConfig
from tl_hub.data.loading import dataset_label_names, prepare_data
from tl_hub.errors import ConfigError
from tl_hub.experiments.results import (
    ALL,
    ARMS,
    RESULTS_NAME,
    SOURCE_ONLY,
    TRANSFER_ARMS,
    Size,
    size_label,
    size_order,
)
from tl_hub.inference.evaluate import match_labels
from tl_hub.metrics import summary
from tl_hub.progress import Progress
from tl_hub.recipes import get_recipe
from tl_hub.release.facts import load_facts
from tl_hub.release.files import CARD_NAME, METRICS_NAME, write_json
from tl_hub.release.load import from_pretrained
from tl_hub.scoring import eval_loader, image_inputs, score
from tl_hub.training.checkpoints import has_progress
from tl_hub.training.rundir import claim_run_dir
from tl_hub.training.tracking import LOGS_DIR, RunNames
from tl_hub.training.trainer import train
from tl_hub.training.weights import release_start

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comparison:
    """What to compare: `base` is the recipe with the shared settings (dataset, epochs, batch size, lr...);
    each arm sets the seed, the strategy, the start and the training-set size."""

    base: RunConfig
    arms: tuple[str, ...]
    sizes: tuple[Size, ...]
    seeds: tuple[int, ...]
    source_dataset: str | None = None  # train the source model on this dataset, one per seed
    source_epochs: int | None = None  # None: base.train.epochs
    init_from: str | None = None  # or start the transfer arms from this release

    def __post_init__(self) -> None:
        for name, values in (("arms", self.arms), ("sizes", self.sizes), ("seeds", self.seeds)):
            if not values:
                raise ConfigError(f"{name} is empty: name at least one")
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} {','.join(map(str, values))} repeats a value")
        for arm in self.arms:
            if arm not in ARMS:
                raise ConfigError(f"unknown arm {arm!r}: choose from {', '.join(ARMS)}")
        for size in self.sizes:
            if size != ALL and not (isinstance(size, int) and size > 0):
                raise ConfigError(f"size {size!r} is not a positive number of images per class or 'all'")
        if self.source_dataset is not None and self.init_from is not None:
            raise ConfigError("--source-dataset and --init-from both name the source model: pass one")
        for seed in self.seeds:  # each seed as the run's dataclass checks it
            dataclasses.replace(self.base.train, seed=seed)
        if self.source_epochs is not None:
            dataclasses.replace(self.base.train, epochs=self.source_epochs)
        has_source = self.source_dataset is not None or self.init_from is not None
        if SOURCE_ONLY in self.arms and not has_source:
            raise ConfigError(
                "arm source-only scores a source model: pass --source-dataset DATASET or "
                "--init-from REPO_OR_DIR"
            )
        transfer = [arm for arm in self.arms if arm in TRANSFER_ARMS]
        recipe = get_recipe(self.base.recipe)
        if transfer and not has_source and recipe.config.model.pretrained is None:
            raise ConfigError(
                f"arm {transfer[0]} needs a pretrained start and recipe {recipe.name} has none: pass "
                "--source-dataset DATASET (e.g. synthetic) or --init-from REPO_OR_DIR"
            )

    def settings(self) -> dict[str, Any]:
        """What every arm shares; a rerun into the same directory must match it."""
        run = self.base.to_dict()
        for section, key in (("train", "seed"), ("transfer", "strategy"), ("transfer", "init_from")):
            del run[section][key]
        del run["data"]["train_size"]
        return {
            "recipe": self.base.recipe,
            "dataset": self.base.data.dataset,
            "source_dataset": self.source_dataset,
            "source_epochs": self.source_epochs,
            "init_from": self.init_from,
            "run": run,
        }

    def jobs(self) -> list[tuple[str, Size, int]]:
        """(arm, size, seed) of every result, smallest sizes first: partial results are the cheap ones."""
        jobs = [(SOURCE_ONLY, 0, seed) for seed in self.seeds if SOURCE_ONLY in self.arms]
        for size in sorted(self.sizes, key=size_order):
            for seed in self.seeds:
                jobs += [(arm, size, seed) for arm in self.arms if arm != SOURCE_ONLY]
        return jobs

    def source_run(self, seed: int) -> RunConfig:
        """The source model's run: the recipe's own start and strategy on `source_dataset`."""
        assert self.source_dataset is not None
        recipe = get_recipe(self.base.recipe).config
        run = dataclasses.replace(
            self.base,
            data=dataclasses.replace(
                recipe.data,
                dataset=self.source_dataset,
                synthetic_per_class=self.base.data.synthetic_per_class,
            ),
            transfer=recipe.transfer,
        )
        return dataclasses.replace(
            run,
            train=dataclasses.replace(
                run.train, seed=seed, epochs=self.source_epochs or self.base.train.epochs
            ),
        )

    def arm_run(self, arm: str, size: Size, seed: int, num_classes: int, source: str | None) -> RunConfig:
        """The run of one trained arm: the base with this seed, strategy, start and training-set size."""
        assert arm != SOURCE_ONLY
        base = self.base
        if arm == "scratch":
            model, transfer = dataclasses.replace(base.model, pretrained=None), {"init_from": None}
        else:
            model, transfer = base.model, {"init_from": source}
        return dataclasses.replace(
            base,
            model=model,
            data=dataclasses.replace(base.data, train_size=None if size == ALL else size * num_classes),
            train=dataclasses.replace(base.train, seed=seed),
            transfer=dataclasses.replace(base.transfer, strategy=arm, **transfer),
        )

    def describe_init(self, source: str) -> str:
        """The source-only arm's model, by its public name (trained arms' starts come from their facts)."""
        return release_start(source).describe()


def load_results(output_dir: Path, comparison: Comparison) -> dict[str, Any]:
    """The record in `output_dir`, or a new one; ConfigError when it was made with other settings."""
    path = output_dir / RESULTS_NAME
    settings = json.loads(json.dumps(comparison.settings()))  # as JSON would give it back
    if not path.exists():
        return {"tl_hub_version": __version__, "settings": settings, "sources": [], "results": []}
    results = json.loads(path.read_text())
    if results["settings"] != settings:
        diffs = _differences(results["settings"], settings)
        raise ConfigError(
            f"{str(output_dir)!r} holds a comparison with other settings ({'; '.join(diffs[:4])}): "
            "rerun with its settings to add arms, sizes or seeds, or choose another --output-dir"
        )
    return results


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _key(entry: dict) -> tuple[str, Size, int]:
    return entry["arm"], entry["size"], entry["seed"]


def _release_done(run_dir: Path) -> bool:
    return (run_dir / "model" / CARD_NAME).exists()  # the model card is the release's last file


def _train_or_resume(run: RunConfig, run_dir: Path, accelerator: Accelerator, names: RunNames) -> None:
    """Train `run` into `run_dir`, continuing a crashed run from its last checkpoint."""
    resume = run_dir.exists()
    accelerator.wait_for_everyone()  # every process has looked before the main one writes anything
    if resume:
        logger.info("resuming the unfinished run in %s", run_dir)
    train(run, run_dir, accelerator, resume=resume, names=names)


def _run_entry(run_dir: Path, output_dir: Path) -> dict[str, Any]:
    """What results.json keeps of a finished run: read back from its release's metrics.json."""
    metrics = json.loads((run_dir / "model" / METRICS_NAME).read_text())
    facts = load_facts(run_dir / "model")
    entry = {
        "run_dir": str(run_dir.relative_to(output_dir)),
        # what the release itself records of its start, strategy and data (facts.json)
        "strategy": facts.strategy if facts else None,
        "init": facts.start.describe() if facts else "unknown",
        "dataset": facts.dataset if facts else None,
        "counts": metrics["data"]["counts"],
        "validation_from": metrics["data"]["validation_from"],
        "fingerprints": metrics["data"].get("fingerprints", {}),
        "history": metrics["history"],
        "train_seconds": round(sum(h["seconds"] for h in metrics["history"]), 2),
        "mixed_precision": metrics.get("mixed_precision", "no"),  # "no" before tl_hub recorded it
    }
    for split in ("validation", "test"):
        if split in metrics:
            entry[split] = summary(metrics[split])
    return entry


def score_source_only(model_dir: str | Path, run: RunConfig, accelerator: Accelerator) -> dict[str, Any]:
    """The model in `model_dir`, untrained on the target, scored on the validation and test images that
    `run`'s arms are scored on (the same carve, the same seed), over the target's classes."""
    model, config = from_pretrained(model_dir)
    # One training image: the validation carve comes before the training sample, so it is unchanged.
    data_cfg = dataclasses.replace(run.data, train_size=1)
    with accelerator.main_process_first():
        data = prepare_data(data_cfg, config.preprocess, run.train.seed)
    # The model's logits for the target's classes, in the target's order: it chooses among those only,
    # as every trained arm does.
    columns = match_labels(
        data.label_names,
        list(config.label_names),
        fix="the source-only arm scores the source model on the target's classes, so it needs the same class "
        "names (or class numbers): drop source-only from --arms",
    )
    model = model.to(accelerator.device).eval()
    prepare = image_inputs(config.preprocess)
    entry: dict[str, Any] = {
        "counts": {"validation": len(data.validation)},
        "validation_from": data.validation_from,
        "fingerprints": {k: v for k, v in data.fingerprints().items() if k != "train"},
        "history": [],
        "train_seconds": 0.0,
    }
    for name, split in (("validation", data.validation), ("test", data.test)):
        if split is None:
            continue
        loader = eval_loader(split.images, split.labels, accelerator)
        metrics = score(model, loader, accelerator, prepare, data.label_names, name, columns)
        entry["counts"][name] = len(split)
        entry[name] = summary(metrics)
    return entry


class _Runner:
    """The loop over jobs, with the record it keeps; every process runs it, the main one writes."""

    def __init__(self, comparison: Comparison, output_dir: Path, accelerator: Accelerator):
        self.cmp = comparison
        self.out = output_dir
        self.accelerator = accelerator

    def names(self, run: str) -> RunNames:
        """A run of the comparison in the trackers: one project (the comparison's directory), the run
        named by what it is (arm, size, seed), its files under DIR/logs/."""
        return RunNames(self.out.resolve().name, run, self.out / LOGS_DIR)

    def source(self, seed: int, results: dict) -> str:
        """The source release for `seed`: trained here (once, then reused) or the given one."""
        if self.cmp.init_from is not None:
            return self.cmp.init_from
        run_dir = self.out / "source" / f"seed-{seed}"
        if not _release_done(run_dir):
            logger.info("training the source model on %s, seed %d", self.cmp.source_dataset, seed)
            names = self.names(f"source, seed {seed}")
            _train_or_resume(self.cmp.source_run(seed), run_dir, self.accelerator, names)
        if all(s["seed"] != seed for s in results["sources"]):
            results["sources"].append(
                {"seed": seed, "dataset": self.cmp.source_dataset, **_run_entry(run_dir, self.out)}
            )
        return str(run_dir / "model")

    def run(self, arm: str, size: Size, seed: int, num_classes: int, results: dict) -> dict[str, Any]:
        source = None
        has_source = self.cmp.source_dataset is not None or self.cmp.init_from is not None
        if arm == SOURCE_ONLY or (arm in TRANSFER_ARMS and has_source):
            source = self.source(seed, results)
        entry: dict[str, Any] = {"arm": arm, "size": size, "seed": seed}
        if arm == SOURCE_ONLY:
            target = dataclasses.replace(
                self.cmp.base, train=dataclasses.replace(self.cmp.base.train, seed=seed)
            )
            entry |= {"strategy": None, "init": self.cmp.describe_init(source), "train_size": 0}
            return entry | score_source_only(source, target, self.accelerator)
        run = self.cmp.arm_run(arm, size, seed, num_classes, source)
        run_dir = self.out / "runs" / arm / f"size-{size}" / f"seed-{seed}"
        if not _release_done(run_dir):
            names = self.names(f"{arm}, {size_label(size)}, seed {seed}")
            _train_or_resume(run, run_dir, self.accelerator, names)
        t = run.train
        entry |= {
            "train_size": run.data.train_size,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "lr": t.lr,
            "optimizer": t.optimizer,
        }
        return entry | _run_entry(run_dir, self.out)


def run_comparison(
    comparison: Comparison, output_dir: str | Path, accelerator: Accelerator
) -> dict[str, Any]:
    """Run every (arm, size, seed) of `comparison` not yet recorded in `output_dir`, then write the report.

    Resumable: results.json records each finished arm, so a rerun skips it; an arm interrupted mid-training
    continues from its last checkpoint. A rerun with more arms, sizes or seeds adds them; one with other
    shared settings (dataset, epochs, ...) is refused. Returns the record (results.json's content).
    """
    output_dir = Path(output_dir)
    # One comparison at a time in a directory; one that fails before its first run leaves nothing behind.
    with claim_run_dir(output_dir, accelerator, lambda: _has_progress(output_dir)):
        return _run_pending(comparison, output_dir, accelerator)


def _has_progress(output_dir: Path) -> bool:
    return any(has_progress(d) for d in output_dir.iterdir() if d.is_dir())


def _run_pending(comparison: Comparison, output_dir: Path, accelerator: Accelerator) -> dict[str, Any]:
    from tl_hub.experiments.report import write_report  # matplotlib only where a report is written

    runner = _Runner(comparison, output_dir, accelerator)
    results = load_results(output_dir, comparison)
    with accelerator.main_process_first():
        label_names = dataset_label_names(comparison.base.data)
    results["num_classes"] = len(label_names)
    results["label_names"] = label_names
    done = {_key(e) for e in results["results"]}
    jobs = comparison.jobs()
    pending = [job for job in jobs if job not in done]
    logger.info(
        "comparison in %s: %d runs (%d already recorded, %d to do): arms %s, sizes %s, seeds %s",
        output_dir,
        len(jobs),
        len(jobs) - len(pending),
        len(pending),
        ", ".join(comparison.arms),
        ", ".join(size_label(s) for s in comparison.sizes),
        ", ".join(map(str, comparison.seeds)),
    )
    accelerator.wait_for_everyone()  # every process has read results.json before it changes
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / RESULTS_NAME, results)
    bar = Progress(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        desc="arms",
        unit="arm",
        disable=not accelerator.is_main_process,
    )
    with logging_redirect_tqdm(tqdm_class=Progress):
        for arm, size, seed in pending:
            bar.set_postfix_str(f"{arm}, {size_label(size) if size else 'no target images'}, seed {seed}")
            entry = runner.run(arm, size, seed, len(label_names), results)
            results["results"].append(entry)
            metric = "test" if "test" in entry else "validation"
            logger.info(
                "%s, %s, seed %d: %s accuracy %.4f",
                arm,
                size_label(size) if size else "no target images",
                seed,
                metric,
                entry[metric]["accuracy"],
            )
            if accelerator.is_main_process:
                write_json(output_dir / RESULTS_NAME, results)
            bar.update()
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_report(results, output_dir)
    accelerator.wait_for_everyone()
    return results
