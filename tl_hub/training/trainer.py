"""A whole training run, in steps: set-up -> inputs -> fit -> score -> release.

`train` runs the steps in order; each step is a short function of what the ones before it made. The caller
makes the process's Accelerator (`tl_hub.accelerator.make_accelerator`) and ends it; `train` can run
several times in one process (tl_hub.experiments.compare does).

The run directory OUTPUT_DIR holds `run_config.json`, `checkpoints/epoch_NNN/` (Accelerate state, for
--resume) and the release `model/`. Nothing in `model/` is resume state; nothing in `checkpoints/` is
published.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn

from tl_hub.config import RunConfig
from tl_hub.data.loading import prepare_data
from tl_hub.data.naming import dataset_name
from tl_hub.data.streaming import prepare_streaming
from tl_hub.data.views import with_views
from tl_hub.errors import ConfigError, TrainingDiverged
from tl_hub.models import Architecture, create_model, get_architecture
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.facts import public_run, run_facts
from tl_hub.release.writer import write_release
from tl_hub.scoring import score
from tl_hub.training.averaging import WeightAverage
from tl_hub.training.checkpoints import (
    check_frozen,
    check_run_dir,
    has_progress,
    load_history,
    save_checkpoint,
    tensors_digest,
    write_run_config,
)
from tl_hub.training.engine import epoch_seeds, train_one_epoch
from tl_hub.training.inputs import Inputs, Job, build_inputs
from tl_hub.training.provenance import recipe_text
from tl_hub.training.rundir import claim_run_dir
from tl_hub.training.strategies import TransferPlan
from tl_hub.training.tracking import LOGS_DIR, RunLog, RunNames
from tl_hub.training.weights import init_from_release, pretrained_model, start_weights

logger = logging.getLogger(__name__)

Metrics = dict[str, dict]  # split -> classification metrics


def train(
    run: RunConfig,
    output_dir: str | Path,
    accelerator: Accelerator,
    resume: bool = False,
    names: RunNames | None = None,
) -> Metrics:
    """Train `run` into `output_dir`, write its release to `output_dir/model`; returns the final metrics.

    `names` names the run in the Accelerator's experiment trackers (default: the run directory's name, its
    files under `output_dir/logs`)."""
    # Accelerate keeps what it prepared (and saves and loads it as checkpoints): a run starts from none of an
    # earlier run's models, optimizers or loaders, and leaves none behind.
    accelerator.free_memory()
    output_dir = Path(output_dir)
    names = names or RunNames(output_dir.name, output_dir.name, output_dir / LOGS_DIR)
    # One run at a time in a directory; a run that fails before its first checkpoint leaves nothing behind.
    with claim_run_dir(output_dir, accelerator, lambda: has_progress(output_dir)):
        job = set_up(run, output_dir, accelerator, resume)
        inputs = build_inputs(job)
        log = RunLog(accelerator, names)
        try:
            history, last_validation = fit(job, inputs, log)
            evaluations = score_splits(job, inputs, last_validation)
            log.final(evaluations)
            release(job, history, evaluations)
        finally:
            inputs.hook.remove()
            log.finish()
    accelerator.free_memory()
    return evaluations


# -- set-up ------------------------------------------------------------------------------------------------


def set_up(run: RunConfig, output_dir: Path, accelerator: Accelerator, resume: bool) -> Job:
    """Check the request and the run directory, then load the data and build the model and its plan."""
    n_proc = accelerator.num_processes
    arch = get_architecture(run.model.architecture)
    arch.family_args(run.model.pooled_head)  # refuses --pooled-head where the family has none
    if run.train.batch_size % n_proc:
        raise ConfigError(
            f"batch_size={run.train.batch_size} does not split over {n_proc} processes: "
            f"use a multiple of {n_proc}"
        )
    resume_from = check_run_dir(output_dir, run, resume)
    if n_proc > 1:
        logger.info(
            "%d processes (%s): global batch %d = %d x %d",
            n_proc,
            accelerator.distributed_type.value,
            run.train.batch_size,
            n_proc,
            run.train.batch_size // n_proc,
        )
    if accelerator.is_main_process:
        write_run_config(output_dir, run)
    set_seed(run.train.seed)
    if run.data.streaming and run.transfer.caches_features:
        raise ConfigError(
            "feature-extract caches every image's features, which --streaming never holds: "
            "add --no-feature-cache, or drop --streaming"
        )
    if run.data.streaming and run.transfer.cache_views and run.transfer.feature_cache:
        raise ConfigError(
            f"--cache-views {run.transfer.cache_views} caches every image's views, which --streaming never "
            "holds: drop --cache-views (or add --no-feature-cache), or drop --streaming"
        )
    # One process decodes (and fills the disk image cache); the others then read what it made.
    with accelerator.main_process_first():
        prepare = prepare_streaming if run.data.streaming else prepare_data
        data = prepare(run.data, run.preprocess, run.train.seed)
    logger.info(
        "data: %s, %s, %d classes",
        run.data.dataset,
        ", ".join(f"{k} {v}" for k, v in data.counts().items()),
        len(data.label_names),
    )
    start = start_weights(run)  # named (and a local file hashed) before it is read
    model = build_model(run, arch, data.label_names)
    plan = TransferPlan(model, arch.base, run.transfer, run.train.lr)
    cached = run.transfer.caches_features or run.caches_prefix(plan.prefix_kind is not None)
    if run.preprocess.tta_scales and cached:
        views = ",".join(f"{s:g}" for s in run.preprocess.tta_scales)
        raise ConfigError(
            f"--tta-scales {views} scores views of each image, and {run.transfer.strategy} here trains and "
            "scores cached features: add --no-feature-cache, or drop --tta-scales"
        )
    plan.start_epoch(model, 1)
    plan.log_counts(1)
    digest = tensors_digest(plan.never_trained())
    return Job(run, output_dir, accelerator, arch, data, model, plan, resume_from, digest, start)


def build_model(run: RunConfig, arch: Architecture, label_names: list[str]) -> nn.Module:
    """The network with its starting weights: random, a pretrained base, or a whole earlier release."""
    shape = {
        "num_classes": len(label_names),
        "in_chans": run.preprocess.channels,
        "img_size": run.preprocess.input_size,
        "drop_rate": run.model.drop_rate,
        "pooled_head": run.model.pooled_head,
    }
    transfer = run.transfer.spec.pretrained
    if transfer and run.transfer.init_from is None and run.model.pretrained is not None:
        return pretrained_model(arch, run.model.pretrained, **shape)
    model = create_model(arch.name, **shape)
    if not transfer:
        logger.info("strategy scratch: random initial weights")
    elif run.transfer.init_from is not None:
        init_from_release(model, arch.name, run.transfer.init_from, label_names)
    else:
        logger.warning(
            "strategy %s without pretrained weights (--no-pretrained): the base starts random",
            run.transfer.strategy,
        )
    return model


# -- fit ---------------------------------------------------------------------------------------------------


def fit(job: Job, inputs: Inputs, log: RunLog) -> tuple[list[dict[str, float]], dict | None]:
    """Every epoch not yet done, each ending with a checkpoint; returns the per-epoch history and the last
    epoch's validation metrics (None when a resumed run had no epoch left)."""
    history: list[dict[str, float]] = []
    first_epoch = 1
    if job.resume_from is not None:
        check_frozen(job.resume_from, job.frozen_digest)
        # The checkpoint lacks the never-trained parameters: they were rebuilt, and checked, above.
        job.accelerator.load_state(str(job.resume_from), strict=not job.plan.never_trained())
        if inputs.average is not None:
            inputs.average.load(job.resume_from)
        history = load_history(job.resume_from)
        first_epoch = len(history) + 1
        logger.info("resumed from %s: continuing at epoch %d", job.resume_from, first_epoch)
    log.start(job.run, first_epoch, len(inputs.train_loader), inputs.optimizer, job.plan.group_names)
    validation = None
    for epoch in range(first_epoch, job.run.train.epochs + 1):
        row, validation = run_epoch(job, inputs, epoch, log)
        history.append(row)
        extra = {"run": job.run.to_dict(), "frozen_sha256": job.frozen_digest}
        save_checkpoint(job.accelerator, job.output_dir, epoch, history, extra, inputs.average)
    if inputs.average is not None:
        inputs.average.copy_to_source()  # the release holds the average
    return history, validation


def run_epoch(job: Job, inputs: Inputs, epoch: int, log: RunLog) -> tuple[dict[str, float], dict]:
    """Train one epoch and score validation; returns the history row and the validation metrics."""
    run, accelerator, plan = job.run, job.accelerator, job.plan
    start = time.perf_counter()
    # Every epoch's randomness (shuffle, augmentation, dropout) derives from (seed, epoch, process), so a
    # resumed run replays exactly what an uninterrupted one would have done.
    global_seed, augment_seed = epoch_seeds(run.train.seed, epoch, accelerator.process_index)
    set_seed(global_seed)
    generator = torch.Generator().manual_seed(augment_seed)
    inputs.train_loader.set_epoch(epoch)
    if inputs.on_epoch is not None:
        inputs.on_epoch(epoch)
    plan.start_epoch(job.model, epoch)
    if plan.unfreezes(epoch):
        plan.log_counts(epoch)  # finetune-top: the last conv block joins the head
    if accelerator.num_processes > 1:
        _sync_gradients_of_late_joiners(plan.trainable(epoch), inputs.synced)
    epochs = run.train.epochs
    on_step = log.start_epoch(epoch)
    if inputs.average is not None:
        inputs.average.start_epoch(epoch)
        on_step = _averaged(inputs.average, on_step)
    stats = train_one_epoch(
        inputs.trainee,
        inputs.train_loader,
        inputs.optimizer,
        inputs.scheduler,
        accelerator,
        inputs.train_prepare,
        generator,
        label_smoothing=run.train.label_smoothing,
        desc=f"epoch {epoch}/{epochs}",
        on_step=on_step,
    )
    if not math.isfinite(stats["loss"]):
        where = " and train into a new --output-dir (this one keeps the epochs before)" if epoch > 1 else ""
        raise TrainingDiverged(
            f"epoch {epoch}: the training loss is {stats['loss']}: the run diverged "
            f"(--lr {run.train.lr:g} is likely too high): lower --lr{where}"
        )
    validation = _score(job, inputs, "validation", views=False)  # the curve: the image alone, as cheap
    row = {
        "epoch": epoch,
        "train_loss": stats["loss"],
        "train_accuracy": stats["accuracy"],
        "val_loss": validation["loss"],
        "val_accuracy": validation["accuracy"],
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "epoch %d/%d: train loss %.4f acc %.4f | validation loss %.4f accuracy %.4f | %.1fs",
        *(epoch, epochs, row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"]),
        row["seconds"],
    )
    log.end_epoch(epoch, row, validation)
    return row, validation


def _averaged(
    average: WeightAverage, then: Callable[[torch.Tensor, int], None] | None
) -> Callable[[torch.Tensor, int], None]:
    """An on_step that folds the step's weights into `average`, then calls `then`."""

    def on_step(loss: torch.Tensor, images: int) -> None:
        average.update()
        if then is not None:
            then(loss, images)

    return on_step


def _score(job: Job, inputs: Inputs, split: str, views: bool = True) -> dict:
    """`split`'s metrics; with the preprocessing's test-time views unless `views` is False (set_up refused
    views where features are cached)."""
    loader = inputs.eval_loaders[split]
    scored = with_views(inputs.scored, job.run.preprocess) if views else inputs.scored
    return score(scored, loader, job.accelerator, inputs.eval_prepare, job.data.label_names, split)


def _sync_gradients_of_late_joiners(params: list[nn.Parameter], synced: set[int]) -> None:
    """Average across processes the gradients of parameters unfrozen after DDP wrapped the model.

    DDP only synchronizes what required grad at wrap time; finetune-top's last conv block joins later, so
    without this each process would train its own copy of it on its own shard of the data.
    """
    for p in params:
        if id(p) not in synced:
            p.register_post_accumulate_grad_hook(_all_reduce_mean)
            synced.add(id(p))


def _all_reduce_mean(param: nn.Parameter) -> None:
    torch.distributed.all_reduce(param.grad)
    param.grad.div_(torch.distributed.get_world_size())


# -- score -------------------------------------------------------------------------------------------------


def score_splits(job: Job, inputs: Inputs, last_validation: dict | None) -> Metrics:
    """The final metrics of every evaluation split, as the release predicts (with its test-time views);
    without views, validation comes from the last epoch when it ran here."""
    evaluations = {}
    for split in inputs.eval_loaders:
        if split == "validation" and last_validation is not None and not job.run.preprocess.tta_scales:
            evaluations[split] = last_validation
        else:
            evaluations[split] = _score(job, inputs, split)
        m = evaluations[split]
        logger.info(
            "%s: accuracy %.4f, macro-F1 %.4f, top-5 accuracy %.4f (%d images)",
            *(split, m["accuracy"], m["macro_f1"], m["top5_accuracy"], m["num_samples"]),
        )
    return evaluations


# -- release -----------------------------------------------------------------------------------------------


def release(job: Job, history: list[dict[str, float]], evaluations: Metrics) -> None:
    """Write OUTPUT_DIR/model from the main process, once every process has finished."""
    accelerator, run, data = job.accelerator, job.run, job.data
    _check_replicas_agree(accelerator, job.model)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metrics = {
            "recipe": run.recipe,
            "dataset": dataset_name(run.data),
            **evaluations,
            "history": history,
            # "no", or the autocast dtype Accelerate trained in (accelerate launch --mixed_precision bf16)
            "mixed_precision": accelerator.mixed_precision,
            "data": {
                "counts": data.counts(),
                "validation_from": data.validation_from,
                "skipped_images": data.skipped_images,
                "fingerprints": data.fingerprints(),
            },
        }
        facts = run_facts(run, job.start, recipe_text(run), metrics, len(data.label_names))
        config = ReleaseConfig.from_run(public_run(run, facts), data.label_names)
        write_release(job.output_dir / "model", job.model, config, metrics, facts, examples=data.validation)
    accelerator.wait_for_everyone()


def _check_replicas_agree(accelerator: Accelerator, model: nn.Module) -> None:
    """Warn if the processes ended with different weights: the release holds the main process's."""
    if accelerator.num_processes == 1:
        return
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(accelerator.device)
    everyone = accelerator.gather(sums[None])  # (processes, parameters)
    differ = (everyone != everyone[:1]).any(dim=0).sum()
    if differ and accelerator.is_main_process:
        logger.warning(
            "the processes' weights differ in %d of %d tensors: the release holds the main process's",
            int(differ),
            len(sums),
        )
