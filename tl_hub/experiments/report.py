"""The report of a comparison (tl_hub.experiments.compare): report.md, its tables and its two plots, from
results.json.

- accuracy_per_epoch.png: validation accuracy per epoch, one panel per training-set size, one line per arm
  (mean over seeds, band from the lowest to the highest seed), the source-only level dashed. The claim to
  test: a transferred start is higher, learns faster and ends higher.
- accuracy_vs_size.png: final accuracy against training images per class (log scale), mean +- standard
  deviation over seeds.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tl_hub.config import DataConfig, TransferConfig
from tl_hub.data.naming import dataset_name
from tl_hub.experiments.plots import plot_accuracy_per_epoch, plot_accuracy_vs_size
from tl_hub.experiments.results import (
    ALL,
    ARMS,
    REPORT_NAME,
    RESULTS_NAME,
    SOURCE_ONLY,
    TRANSFER_ARMS,
    Size,
    final_metric,
    group_results,
    mean_std,
    size_label,
    size_order,
)

logger = logging.getLogger(__name__)

CURVES_PLOT = "accuracy_per_epoch.png"
SIZES_PLOT = "accuracy_vs_size.png"
REACH = 0.95  # "epochs to reach": the first epoch at 95% of the best final accuracy at that size


def _cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f} (1 seed)"


def _curves(entries: list[dict[str, Any]]) -> np.ndarray:
    """(seeds, epochs) validation accuracies; runs cut to the shortest history (they all have the same)."""
    length = min(len(e["history"]) for e in entries)
    return np.array([[h["val_accuracy"] for h in e["history"][:length]] for e in entries])


def _same_data(results: dict[str, Any]) -> list[str]:
    """Lines saying whether each seed's runs saw one validation (and test) split, and each size one train
    sample; a mismatch is a bug, so it is flagged."""
    lines = []
    entries = results["results"]
    for seed in sorted({e["seed"] for e in entries}):
        of_seed = [e for e in entries if e["seed"] == seed]
        for split in ("validation", "test"):
            prints = {e["fingerprints"].get(split) for e in of_seed if split in e}
            if not prints:
                continue
            count = sum(split in e for e in of_seed)
            if len(prints) == 1:
                lines.append(
                    f"- seed {seed}, {split}: the same {of_seed[0]['counts'][split]} images in all {count} "
                    "runs "
                    f"(fingerprint `{prints.pop()}`)"
                )
            else:
                lines.append(
                    f"- **seed {seed}, {split}: {len(prints)} different splits in {count} runs (a bug)**"
                )
        sizes = {e["size"] for e in of_seed if e["arm"] != SOURCE_ONLY}
        for size in sorted(sizes, key=size_order):
            prints = {
                e["fingerprints"].get("train")
                for e in of_seed
                if e["size"] == size and e["arm"] != SOURCE_ONLY
            }
            if len(prints) > 1:
                lines.append(
                    f"- **seed {seed}, {size_label(size)}: the arms trained on different images (a bug)**"
                )
    trained = [e for e in entries if e["arm"] != SOURCE_ONLY]
    if trained:
        lines.append(
            "- every arm of a seed and size trained on the same class-balanced sample "
            "(equal train fingerprints)"
            if not any("a bug" in line for line in lines)
            else "- see the flagged lines above"
        )
    return lines


@dataclass(frozen=True)
class _View:
    """What every part of the report reads from results.json."""

    results: dict[str, Any]
    metric: str  # the split final accuracies come from
    groups: dict[tuple[str, Size], list[dict[str, Any]]]
    arms: list[str]
    sizes: list[Size]  # 0 (source-only) first when present
    trained_sizes: list[Size]

    @classmethod
    def of(cls, results: dict[str, Any]) -> _View:
        groups = group_results(results)
        sizes = sorted({size for _, size in groups}, key=size_order)
        arms = [a for a in ARMS if any(arm == a for arm, _ in groups)]
        return cls(results, final_metric(results), groups, arms, sizes, [s for s in sizes if s != 0])

    def source_only(self, split: str) -> np.ndarray | None:
        entries = self.groups.get((SOURCE_ONLY, 0))
        return np.array([e[split]["accuracy"] for e in entries]) if entries else None


def write_report(results: dict[str, Any], output_dir: str | Path) -> Path:
    """Write report.md and the two plots for `results` (results.json's content) into `output_dir`."""
    output_dir = Path(output_dir)
    view = _View.of(results)
    has_curves, has_sizes = _plots(view, output_dir)
    md = [
        *_introduction(view),
        "",
        "## Same data for every arm",
        "",
        *_same_data(results),
        "",
        *_final_table(view),
        "",
        *_winners(view),
    ]
    md += ["", f"![final accuracy against training-set size]({SIZES_PLOT})", ""] if has_sizes else [""]
    if has_curves:
        md += [*_curves_table(view), "", f"![validation accuracy per epoch]({CURVES_PLOT})", ""]
    md += [
        "## Files",
        "",
        f"- `{RESULTS_NAME}`: every number above, per run, with the settings that produced it.",
        "- `runs/ARM/size-N/seed-S/model/`: each run's release (weights, config, metrics, curves, model "
        "card).",
    ]
    if results["settings"]["source_dataset"]:
        md.append("- `source/seed-S/model/`: the source model of each seed.")
    path = output_dir / REPORT_NAME
    path.write_text("\n".join(md) + "\n")
    logger.info("report written to %s", path)
    return path


def _plots(view: _View, output_dir: Path) -> tuple[bool, bool]:
    """accuracy_per_epoch.png and accuracy_vs_size.png; whether each was drawn."""
    settings, groups = view.results["settings"], view.groups
    title = f"{settings['recipe']} on {_named(settings['dataset'], settings)}"
    panels = {
        size_label(size) if size != ALL else "all training images": {
            arm: _curves(groups[(arm, size)]) for arm in view.arms if (arm, size) in groups
        }
        for size in view.trained_sizes
    }
    if panels:
        plot_accuracy_per_epoch(panels, output_dir / CURVES_PLOT, title, view.source_only("validation"))

    def per_class(size: Any, entries: list[dict[str, Any]]) -> float:
        if size != ALL:
            return float(size)
        return float(np.mean([e["counts"]["train"] for e in entries])) / view.results["num_classes"]

    lines: dict[str, tuple[list[float], list[np.ndarray]]] = {}
    ticks: dict[float, str] = {}
    for (arm, size), entries in groups.items():
        if arm == SOURCE_ONLY:
            continue
        x = per_class(size, entries)
        ticks[x] = f"all\n({x:.0f})" if size == ALL else str(size)
        xs, values = lines.setdefault(arm, ([], []))
        xs.append(x)
        values.append(np.array([e[view.metric]["accuracy"] for e in entries]))
    if lines:
        ylabel = f"final {view.metric} accuracy"
        baseline = view.source_only(view.metric)
        plot_accuracy_vs_size(lines, output_dir / SIZES_PLOT, title, ylabel, ticks, baseline)
    return bool(panels), bool(lines)


def _introduction(view: _View) -> list[str]:
    results, metric = view.results, view.metric
    settings = results["settings"]
    train_cfg = settings["run"]["train"]
    seeds = sorted({e["seed"] for e in results["results"]})
    md = [
        f"# Transfer-learning comparison: {settings['recipe']} on {_named(settings['dataset'], settings)}",
        "",
        f"Arms: {', '.join(view.arms)}. Training-set sizes: "
        f"{', '.join(size_label(s) for s in view.trained_sizes) or '-'}. "
        f"Seeds: {', '.join(map(str, seeds))}.",
        f"The same budget for every arm: {train_cfg['epochs']} epochs, batch {train_cfg['batch_size']}, "
        f"{train_cfg['optimizer']} at lr {train_cfg['lr']:g}.",
    ]
    precisions = {e.get("mixed_precision", "no") for e in results["results"] if e["arm"] != SOURCE_ONLY}
    if precisions - {"no"}:
        md.append(
            f"Mixed precision: {', '.join(sorted(precisions))} (Accelerate's autocast; float32 weights)."
        )
    if settings["source_dataset"] or settings["init_from"]:
        md.append(f"Source model: {_describe_source(results)}.")
    md += ["", "Each arm's start, as its releases record it (`facts.json`):", "", *_starts(view), ""]
    schedules = _schedules(view)
    if schedules:
        md += ["What trains when (the learning rate before the scheduler):", "", *schedules, ""]
    first = results["results"][0] if results["results"] else None
    if first is not None:
        carve = re.sub(r"seed \d+", "the run's seed", first["validation_from"])
        md.append(f"Validation: {carve}; for a seed, the same images for every arm and size.")
        md.append(
            f"Final accuracies are on the {metric} split"
            + (
                "."
                if metric == "test"
                else " (the dataset has no test split; no choice was made on validation: every run keeps its "
                "last epoch)."
            )
        )
    return md


def _final_table(view: _View) -> list[str]:
    header = ["arm", *[("0 (no target images)" if s == 0 else size_label(s)) for s in view.sizes]]
    md = [
        f"## Final {view.metric} accuracy",
        "",
        "Mean ± standard deviation over seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for arm in view.arms:
        cells = [
            _cell([e[view.metric]["accuracy"] for e in view.groups[(arm, s)]])
            if (arm, s) in view.groups
            else "-"
            for s in view.sizes
        ]
        md.append(f"| {arm} | " + " | ".join(cells) + " |")
    return md


def _winners(view: _View) -> list[str]:
    """Per size: which arm ends highest, and by how many points the best transfer arm beats scratch."""
    rows = []
    for size in view.trained_sizes:
        stats = {
            arm: mean_std([e[view.metric]["accuracy"] for e in view.groups[(arm, size)]])
            for arm in view.arms
            if (arm, size) in view.groups
        }
        if len(stats) < 2:
            continue
        ranked = sorted(stats, key=lambda arm: -stats[arm][0])
        winner, second = ranked[0], ranked[1]
        transfer = [arm for arm in ranked if arm in TRANSFER_ARMS]
        gain = "-"
        if transfer and "scratch" in stats:
            best = transfer[0]
            gain = f"{100 * (stats[best][0] - stats['scratch'][0]):+.1f} points ({best})"
        gap = 100 * (stats[winner][0] - stats[second][0])
        seeds = min(len(view.groups[(arm, size)]) for arm in (winner, second))
        spread = 100 * max(stats[winner][1], stats[second][1])
        closeness = "" if seeds < 2 else (", within a seed's spread" if gap <= spread else "")
        rows.append(
            f"| {size_label(size)} | {winner} ({stats[winner][0]:.3f}) | {gain} | "
            f"{second}, {gap:.1f} points behind{closeness} |"
        )
    if not rows:
        return []
    return [
        "## Which start wins",
        "",
        "Per size: the arm with the highest mean final accuracy, by how many points the best transfer arm "
        "beats training from scratch, and the runner-up (within a seed's spread: the gap is at most the "
        "larger standard deviation of the two).",
        "",
        "| size | wins | best transfer arm vs scratch | runner-up |",
        "|---|---|---|---|",
        *rows,
    ]


def _schedules(view: _View) -> list[str]:
    """A line per trained arm: what trains from which epoch at which learning rate (TransferConfig.schedule),
    from the comparison's shared settings."""
    run = view.results["settings"]["run"]
    if "transfer" not in run:
        return []
    lr, epochs = run["train"]["lr"], run["train"]["epochs"]
    return [
        f"- {arm}: {TransferConfig.from_dict({**run['transfer'], 'strategy': arm}).schedule(lr, epochs)}"
        for arm in view.arms
        if arm != SOURCE_ONLY
    ]


def _curves_table(view: _View) -> list[str]:
    md = [
        "## Learning curves",
        "",
        "Validation accuracy, mean over seeds. *Reach*: the first epoch whose mean is at least "
        f"{REACH:.0%} of the best final mean at that size (- : never). *Training time*: the epochs' seconds, "
        "mean over seeds; a feature cache's one pass of the frozen layers (feature-extract, finetune-top on "
        "a sequential base) comes before the first epoch and is not in it.",
        "",
        "| size | arm | epoch 1 | reach | final | final vs scratch | training time |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = view.groups
    for size in view.trained_sizes:
        means = {arm: _curves(groups[(arm, size)]).mean(axis=0) for arm in view.arms if (arm, size) in groups}
        target = REACH * max(m[-1] for m in means.values())
        for arm, mean in means.items():
            reached = np.flatnonzero(mean >= target)
            gain = (
                f"{mean[-1] - means['scratch'][-1]:+.3f}" if "scratch" in means and arm != "scratch" else "-"
            )
            seconds = np.mean([e["train_seconds"] for e in groups[(arm, size)]])
            md.append(
                f"| {size_label(size)} | {arm} | {mean[0]:.3f} | "
                f"{reached[0] + 1 if len(reached) else '-'} | {mean[-1]:.3f} | {gain} | {seconds:.0f} s |"
            )
    return md


def _starts(view: _View) -> list[str]:
    """A line per arm: its strategy and initial weights, from the runs' facts (one per distinct start)."""
    lines = []
    for arm in view.arms:
        entries = [e for e in view.results["results"] if e["arm"] == arm]
        if arm == SOURCE_ONLY:
            starts = sorted(
                {f"{e.get('init', 'the source model')}, untrained on the target" for e in entries}
            )
        else:
            starts = sorted(
                {
                    f"strategy `{e.get('strategy', arm)}` from {e.get('init', 'an unrecorded start')}"
                    for e in entries
                }
            )
        lines.append(f"- {arm}: {'; '.join(starts)}")
    return lines


def _describe_source(results: dict[str, Any]) -> str:
    settings = results["settings"]
    if settings["init_from"]:
        sources = {
            e.get("init", "the release given by --init-from")
            for e in results["results"]
            if e["arm"] == SOURCE_ONLY
        }
        return f"{sources.pop() if len(sources) == 1 else 'the release given by --init-from'}, for every seed"
    scores = []
    for s in sorted(results["sources"], key=lambda s: s["seed"]):
        split = "test" if "test" in s else "validation"
        scores.append(f"seed {s['seed']}: {split} accuracy {s[split]['accuracy']:.3f}")
    epochs = settings["source_epochs"] or settings["run"]["train"]["epochs"]
    described = (
        f"{settings['recipe']} trained on {_named(settings['source_dataset'])} ({epochs} epochs, the "
        "recipe's strategy), one per seed, in `source/seed-S/`"
    )
    return described + (f" ({'; '.join(scores)} on its own dataset)" if scores else "")


def _named(dataset: str, settings: dict[str, Any] | None = None) -> str:
    """A dataset as reports name it: its --dataset-name, a Hub id, or a local folder's own name, never its
    path on this machine (tl_hub.data.naming)."""
    given = (settings or {}).get("run", {}).get("data", {}).get("dataset_name")
    return dataset_name(DataConfig(dataset=dataset, dataset_name=given))
