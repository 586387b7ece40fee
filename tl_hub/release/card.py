"""The Hub model card of a release: metadata (model-index) and text, from its facts.json (what the run did and
scored), config.json (preprocessing, hyperparameters) and metrics.json (the per-epoch history)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from tl_hub.config import RunConfig
from tl_hub.errors import TLHubError
from tl_hub.models import get_architecture
from tl_hub.release.facts import STRATEGY_WORDS, Facts, load_facts
from tl_hub.release.files import METRICS_NAME, read_json
from tl_hub.release.load import load_config


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _describe_preprocess(run: RunConfig) -> str:
    p = run.preprocess
    steps = [f"resize to {p.input_size}x{p.input_size} ({p.interpolation})"]
    if p.crop_pct is not None:
        steps[0] = f"resize the shorter side to {p.input_size / p.crop_pct:.0f}, center-crop {p.input_size}"
    if p.grayscale:
        steps.append("grayscale")
    if p.equalize == "global":
        steps.append("histogram equalization")
    elif p.equalize == "clahe":
        steps.append(
            f"contrast-limited adaptive histogram equalization (CLAHE, clip limit {p.clahe_clip_limit:g}, "
            f"{p.clahe_grid}x{p.clahe_grid} tiles)"
        )
    steps.append(f"normalize with mean {list(p.mean)} and std {list(p.std)}")
    if p.tta_scales:
        views = ", ".join(f"{s:g}" for s in p.tta_scales)
        steps.append(
            f"predict on {len(p.tta_scales) + 1} views (the image, and its field of view scaled by {views} "
            "about the centre), averaging their softmax"
        )
    return ", ".join(steps)


def _describe_aug(run: RunConfig) -> str:
    a = run.aug
    parts = []
    if a.rotation:
        parts.append(f"random rotation within +-{a.rotation:g} degrees")
    if a.scale != (1.0, 1.0):
        parts.append(f"zoom {a.scale[0]:g}-{a.scale[1]:g}")
    if a.translate:
        parts.append(f"shift up to {a.translate:.0%}")
    if a.blur_prob:
        parts.append(f"Gaussian blur (p={a.blur_prob:g}, sigma {a.blur_sigma[0]:g}-{a.blur_sigma[1]:g} px)")
    parts.append("horizontal flip" if a.hflip else "no horizontal flip")
    described = ", ".join(parts)
    t = run.transfer
    if t.caches_features:  # the head saw cached features, not live images
        if not t.cache_views:
            return f"none: the head trained on one cached, plain view per image (configured: {described})"
        return f"{described}; {t.cache_views} augmented views per image, computed once and cached"
    if run.caches_prefix(get_architecture(run.model.architecture).base is not None):
        views = max(1, t.cache_views)
        return (
            f"{described}; {views} view{'s' if views > 1 else ''} per image through the frozen layers, "
            "computed once and cached, one per epoch"
        )
    return described


def render_model_card(
    directory: str | Path, repo_id: str | None = None, local_name: str | None = None
) -> ModelCard:
    """The Hub model card of the release in `directory`, from its facts.json, config.json and metrics.json.

    `repo_id` names the Hub repo in the metadata and the usage snippets; without it, the snippets load
    `local_name` (the release as the user reaches it from where they ran the command, default
    `OUTPUT_DIR/model`).
    """
    directory = Path(directory)
    config = load_config(directory)
    facts = load_facts(directory)
    if config.training is None or facts is None:
        raise TLHubError(
            f"{str(directory)!r} holds no training record (config.json's training, facts.json): no model "
            "card to write; train it again with this version of tl_hub"
        )
    run = config.training
    metrics = read_json(directory / METRICS_NAME, str(directory))
    template = resources.files("tl_hub.model_cards").joinpath("model_card.md").read_text()
    recipe = facts.recipe
    return ModelCard.from_template(
        _card_data(facts, repo_id),
        template_str=template,
        model_name=(repo_id or recipe.name).split("/")[-1],
        description=facts.description(),
        recipe=recipe.name,
        study_summary=recipe.study_summary,
        departures=recipe.departures,
        intended_use=recipe.intended_use,
        dataset=facts.dataset,
        num_train=facts.counts.get("train", 0),
        num_validation=facts.counts.get("validation", 0),
        num_test=facts.counts.get("test", 0),
        validation_from=facts.validation_from,
        num_classes=facts.num_classes,
        skipped_images=facts.skipped_images,
        hyperparameters=_hyperparameters(run, facts),
        preprocessing=_describe_preprocess(run),
        augmentation=_describe_aug(run),
        results=_results(facts),
        has_study=any(row["study"] != "-" for row in _results(facts)),
        per_epoch=", ".join(f"{h['val_accuracy']:.3f}" for h in metrics["history"]),
        library=facts.library,
        load_from=repo_id or local_name or "OUTPUT_DIR/model",
        timm_name=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{local_name or 'OUTPUT_DIR/model'}",
        example=recipe.example,
        citations=recipe.citations,
    )


def _card_data(facts: Facts, repo_id: str | None) -> ModelCardData:
    """The card's metadata, in the Hub's conventions: timm's library name, tags and pipeline for timm
    architectures, and a model-index of accuracy and macro-F1 (the Hub's `f1` with `average: macro`)."""
    eval_results = []
    for r in facts.results:
        where = {
            "task_type": "image-classification",
            "dataset_type": r.hub_id or r.dataset,
            "dataset_name": r.dataset,
            "dataset_config": "default" if r.hub_id else None,
            "dataset_split": r.split,
        }
        eval_results += [
            EvalResult(
                **where, metric_type="accuracy", metric_name="accuracy", metric_value=round(r.accuracy, 4)
            ),
            EvalResult(
                **where,
                metric_type="f1",
                metric_name="macro F1",
                metric_args={"average": "macro"},
                metric_value=round(r.macro_f1, 4),
            ),
        ]
    library_tags = ["timm", "transformers"] if facts.library == "timm" else []
    datasets = list(dict.fromkeys(r.hub_id for r in facts.results if r.hub_id))
    if facts.dataset_hub_id and facts.dataset_hub_id not in datasets:
        datasets.insert(0, facts.dataset_hub_id)
    return ModelCardData(
        license=facts.recipe.license,
        library_name=facts.library,
        tags=list(dict.fromkeys(["image-classification", *library_tags, "tl_hub", *facts.recipe.tags])),
        datasets=datasets or None,
        pipeline_tag="image-classification",
        base_model=facts.start.hub_id,
        model_name=repo_id or facts.recipe.name,
        eval_results=eval_results,
    )


def _hyperparameters(run: RunConfig, facts: Facts) -> list[tuple[str, object]]:
    t = run.train
    start = facts.start.describe().replace("`", "")
    if facts.start.hub_id:
        start += f" ([{facts.start.hub_id}](https://huggingface.co/{facts.start.hub_id}))"
    return [
        ("architecture", facts.architecture),
        *([("head", "pooled: global average pooling -> dropout -> dense")] if run.model.pooled_head else []),
        ("strategy", f"{facts.strategy}: {STRATEGY_WORDS.get(facts.strategy, facts.strategy)}"),
        ("schedule", run.transfer.schedule(t.lr, t.epochs)),
        ("initial weights", start),
        ("optimizer", t.optimizer + (f" (momentum {t.momentum:g})" if t.optimizer == "sgd" else "")),
        ("learning rate", f"{t.lr:g}"),
        ("scheduler", t.scheduler),
        ("weight decay", f"{t.weight_decay:g}"),
        ("label smoothing", f"{t.label_smoothing:g}"),
        ("batch size", t.batch_size),
        ("epochs", t.epochs),
        ("dropout", f"{run.model.drop_rate:g}"),
        ("seed", t.seed),
    ]


def _results(facts: Facts) -> list[dict[str, str]]:
    """Rows of the results table: ours beside the study's, where the run followed the study's protocol and
    the study published that number."""
    rows = []
    for r in facts.results:
        theirs = facts.study_figure(r)
        for metric, value in (
            ("accuracy", r.accuracy),
            ("macro F1", r.macro_f1),
            ("top-5 accuracy", r.top5_accuracy),
        ):
            rows.append(
                {
                    "metric": metric,
                    "split": r.split,
                    "dataset": r.dataset,
                    "images": str(r.num_samples),
                    "ours": _fmt(value),
                    "study": _fmt(theirs) if metric == "accuracy" and theirs is not None else "-",
                }
            )
    return rows
