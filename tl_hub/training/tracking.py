"""Experiment tracking (`--report-to`): a run's curves in TensorBoard, Trackio, Weights & Biases or MLflow,
through Accelerate's trackers.

The script checks the names before anything trains (`resolve_trackers`) and gives them to its one
Accelerator (`Accelerator(log_with=..., project_dir=OUTPUT_DIR/logs)`, see `make_accelerator`). Every
training run then opens a run of its own in each tracker (`start_run`; a comparison trains many), logs
through `accelerator.log` and closes it (`finish_run`); the script's `end_training` closes the rest.

What a run logs, against the optimizer step (1 for the first):

- every step: `train/loss` (the mean over every process's batch), `train/lr` (one per parameter group,
  `train/lr/NAME` when there are several) and `train/images_per_s` (the global batch over the step's wall
  time, measured on the host);
- every epoch, at its last step: `val/*` (loss, accuracy, macro-F1, top-5 accuracy), the epoch's
  `train/epoch_loss` and `train/epoch_accuracy`, and `epoch`;
- once: the run's configuration as hyperparameters (`section.field`), and at the last step `final/*`,
  the final metrics of every evaluation split.

The per-step figures are sent in windows of `WINDOW` steps: one device sync and one reduction across
processes per window instead of one per step. TensorBoard writes under `OUTPUT_DIR/logs/RUN_NAME/`; a resumed
run starts its writer with `purge_step` at its first new step, so the steps of an interrupted epoch that
the checkpoint does not hold are dropped from the curves instead of drawn twice.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import (
    GeneralTracker,
    MLflowTracker,
    TensorBoardTracker,
    TrackioTracker,
    WandBTracker,
    on_main_process,
)
from accelerate.utils import (
    is_mlflow_available,
    is_tensorboard_available,
    is_trackio_available,
    is_wandb_available,
)

try:
    from tensorboard.compat.proto.summary_pb2 import Summary as _Summary
except ImportError:  # tensorboardX alone: Accelerate's own log
    _Summary = None

from tl_hub.config import TRACKERS, RunConfig
from tl_hub.errors import ConfigError
from tl_hub.flags import ALL

logger = logging.getLogger(__name__)

WINDOW = 10  # optimizer steps per send to the trackers (see the module's docstring)
LOGS_DIR = "logs"  # under the run directory (train.py) or the comparison directory (compare.py)

# What each tracker needs installed: the check Accelerate makes, and what to tell a user who lacks it.
_AVAILABLE = {
    "tensorboard": is_tensorboard_available,
    "trackio": is_trackio_available,
    "wandb": is_wandb_available,
    "mlflow": is_mlflow_available,
}
_INSTALL = {
    "tensorboard": "pip install 'tl-hub[tracking]' (or pip install tensorboard)",
    "trackio": "pip install trackio",
    "wandb": "pip install wandb",
    "mlflow": "pip install mlflow",
}
assert set(_AVAILABLE) == set(_INSTALL) == set(TRACKERS)


def resolve_trackers(names: Sequence[str] | None) -> tuple[str, ...]:
    """The trackers `--report-to` names, checked before anything trains: "all" becomes every installed
    one; a named tracker that is not installed is a ConfigError naming the package to install."""
    if not names:
        return ()
    if ALL in names:
        found = tuple(name for name in TRACKERS if _AVAILABLE[name]())
        if not found:
            logger.warning(
                "--report-to all: no tracker is installed (%s): nothing is tracked", _INSTALL["tensorboard"]
            )
        return found
    for name in names:
        if not _AVAILABLE[name]():
            raise ConfigError(f"--report-to {name}: {name} is not installed: {_INSTALL[name]}")
    return tuple(names)


@dataclass(frozen=True)
class RunNames:
    """How one training run is named in the trackers: a project (shared by a comparison's runs), the
    run's own readable name, and the directory the file-based trackers write under."""

    project: str
    run: str
    logs_dir: Path

    @property
    def slug(self) -> str:
        """The run's name for a directory: 'scratch, 10/class, seed 0' -> 'scratch-10-class-seed-0'"""
        return re.sub(r"[^A-Za-z0-9._]+", "-", self.run).strip("-") or "run"


def tracker_names(accelerator: Accelerator) -> list[str]:
    """The trackers the Accelerator was made with (names, or the trackers a previous run built)."""
    return [t.name if isinstance(t, GeneralTracker) else str(t) for t in accelerator.log_with]


class TensorBoardSteps(TensorBoardTracker):
    """Accelerate's TensorBoard tracker, made cheap enough to log every step: all the scalars of a `log`
    call go into one event (Accelerate's writes one per value, each checksummed in Python by the writer's
    thread), and nothing waits for the file after each call (the writer flushes every `flush_secs` and when
    the run finishes). A step of three scalars took 320 us of CPU time with Accelerate's, 40 us with this."""

    def __init__(self, run_name: str, logging_dir: str | Path, **kwargs: Any):
        super().__init__(run_name, logging_dir, max_queue=1000, flush_secs=30, **kwargs)

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        scalars = {k: v for k, v in values.items() if isinstance(v, int | float)}
        file_writer = getattr(self.writer, "file_writer", None)
        if _Summary is None or file_writer is None or len(scalars) < len(values) or kwargs:
            super().log(values, step, **kwargs)  # text, several curves in one chart, tensorboardX
            return
        summary = _Summary(value=[_Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()])
        file_writer.add_summary(summary, step)


def _tracker(name: str, names: RunNames, first_step: int) -> GeneralTracker:
    if name == "tensorboard":
        # TensorBoard's readers drop what earlier files hold from `purge_step` on
        return TensorBoardSteps(names.slug, names.logs_dir, purge_step=first_step)
    if name == "wandb":
        return WandBTracker(names.project, name=names.run, dir=str(names.logs_dir))
    if name == "trackio":
        return TrackioTracker(names.project, name=names.run)
    assert name == "mlflow", name
    return MLflowTracker(names.project, run_name=names.run)


def hyperparameters(run: RunConfig, **extra: Any) -> dict[str, Any]:
    """The run's configuration as flat `section.field` values that every tracker stores: numbers,
    strings, booleans and None; tuples as text."""
    flat: dict[str, Any] = {"recipe": run.recipe, **extra}
    for section, fields in run.to_dict().items():
        if not isinstance(fields, dict):
            continue
        for key, value in fields.items():
            flat[f"{section}.{key}"] = (
                value if value is None or isinstance(value, bool | int | float | str) else str(value)
            )
    return flat


def start_run(
    accelerator: Accelerator, names: RunNames, config: dict[str, Any] | None, first_step: int
) -> bool:
    """Open this training run in every tracker the Accelerator was made with; False when there is none.

    `first_step` is the first optimizer step this run will log (1, or the step after a resumed
    checkpoint's): TensorBoard drops what an earlier, interrupted run logged from there on. `config` is
    stored as the run's hyperparameters (None: already stored by the run this one resumes).
    """
    wanted = tracker_names(accelerator)
    if not wanted:
        return False
    # Accelerate builds its trackers from these in init_trackers; built here, each run gets its own names.
    accelerator.log_with = [_tracker(name, names, first_step) for name in wanted]
    accelerator.init_trackers(names.project, config=config)
    if accelerator.is_main_process:
        logger.info(
            "tracking %s as %r (project %s) with %s",
            names.logs_dir,
            names.run,
            names.project,
            ", ".join(wanted),
        )
    return True


def finish_run(accelerator: Accelerator) -> None:
    """Close this run's trackers (what `end_training` does, without ending the process group: a
    comparison trains on)."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()


def metric_values(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar figures of a metrics dict (accuracy, macro-F1, top-5, loss, ...) as `prefix/name`."""
    return {
        f"{prefix}/{key}": float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "num_samples"
    }


class StepLog:
    """The per-step figures of training, sent to the trackers every `window` steps.

    `step` is called on every process after each optimizer step; every process flushes at the same steps
    (they take the same number), since the losses are averaged across them.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        optimizer: torch.optim.Optimizer,
        group_names: Sequence[str],
        window: int = WINDOW,
    ):
        self.accelerator, self.optimizer, self.window = accelerator, optimizer, window
        self.lr_keys = ["train/lr"] if len(group_names) == 1 else [f"train/lr/{n}" for n in group_names]
        self.step_number = 0
        self.pending: list[tuple[int, torch.Tensor, list[float], float]] = []
        self.clock = time.perf_counter()

    def start_epoch(self, first_step: int) -> None:
        """The next step's number (1-based, counted over the whole run); restarts the clock."""
        self.step_number = first_step - 1
        self.clock = time.perf_counter()

    def step(self, loss: torch.Tensor, images: int) -> None:
        """Record one optimizer step: this process's batch loss and `images` in the global batch."""
        now = time.perf_counter()
        self.step_number += 1
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        rate = images / max(now - self.clock, 1e-9)
        self.clock = now
        self.pending.append((self.step_number, loss.detach(), lrs, rate))
        if len(self.pending) >= self.window:
            self.flush()

    def flush(self) -> None:
        """Send what is pending: one sync for the window's losses, one mean across processes."""
        if not self.pending:
            return
        losses = torch.stack([loss.float() for _, loss, _, _ in self.pending])
        if self.accelerator.num_processes > 1:
            losses = self.accelerator.reduce(losses, reduction="mean")
        for (step, _, lrs, rate), loss in zip(self.pending, losses.tolist(), strict=True):
            values = {
                "train/loss": loss,
                "train/images_per_s": rate,
                **dict(zip(self.lr_keys, lrs, strict=True)),
            }
            self.accelerator.log(values, step=step)
        self.pending.clear()


class RunLog:
    """One training run's figures in the trackers (a no-op when the Accelerator has none).

    Steps count optimizer steps over the whole run, `steps_per_epoch` to an epoch, so a resumed run takes
    up the numbering where its checkpoint left it.
    """

    def __init__(self, accelerator: Accelerator, names: RunNames):
        self.accelerator, self.names = accelerator, names
        self.steps: StepLog | None = None
        self.steps_per_epoch = 0
        self.last_step = 0

    def start(
        self,
        run: RunConfig,
        first_epoch: int,
        steps_per_epoch: int,
        optimizer: torch.optim.Optimizer,
        group_names: Sequence[str],
    ) -> None:
        """Open the run; its hyperparameters are stored when it starts from the first epoch."""
        self.steps_per_epoch = steps_per_epoch
        self.last_step = (first_epoch - 1) * steps_per_epoch
        config = hyperparameters(run, processes=self.accelerator.num_processes) if first_epoch == 1 else None
        if start_run(self.accelerator, self.names, config, self.last_step + 1):
            self.steps = StepLog(self.accelerator, optimizer, group_names)

    def start_epoch(self, epoch: int) -> Callable[[torch.Tensor, int], None] | None:
        """What the epoch's loop calls after every optimizer step (None: nothing is tracked)."""
        if self.steps is None:
            return None
        self.steps.start_epoch((epoch - 1) * self.steps_per_epoch + 1)
        return self.steps.step

    def end_epoch(self, epoch: int, row: dict[str, float], validation: dict[str, Any]) -> None:
        """The epoch's figures, at its last step."""
        if self.steps is None:
            return
        self.steps.flush()
        self.last_step = epoch * self.steps_per_epoch
        values = {
            "epoch": epoch,
            "train/epoch_loss": row["train_loss"],
            "train/epoch_accuracy": row["train_accuracy"],
            **metric_values("val", validation),
        }
        self.accelerator.log(values, step=self.last_step)

    def final(self, evaluations: dict[str, dict[str, Any]]) -> None:
        """The final metrics of every evaluation split, once, at the last step."""
        if self.steps is None:
            return
        values = {}
        for split, metrics in evaluations.items():
            values |= metric_values(f"final/{split}", metrics)
        self.accelerator.log(values, step=self.last_step)

    def finish(self) -> None:
        if self.steps is not None:
            finish_run(self.accelerator)
            self.steps = None
