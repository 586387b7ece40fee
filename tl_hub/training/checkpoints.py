"""The run directory's resume state: run_config.json and the per-epoch Accelerate checkpoints.

A checkpoint holds what can change during the run: the parameters that train in some epoch, the buffers, the
optimizer, the schedule and the random states. Parameters the strategy never trains (a frozen base) are
rebuilt from their source at set-up, and a digest of them, kept in the checkpoint, proves on --resume that
they are the same.

`trainer_state.json` is written last and lists every file of the checkpoint with its size and SHA-256:
--resume verifies them and falls back to the newest intact checkpoint, saying which it skipped and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from tl_hub.config import RunConfig
from tl_hub.errors import ConfigError
from tl_hub.release.files import write_json
from tl_hub.training.averaging import WeightAverage
from tl_hub.training.features import tensor_bytes

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
STATE_NAME = "trainer_state.json"  # written last: a checkpoint without it is incomplete
CHECKPOINTS_KEPT = 2


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (intact or not), oldest first."""
    root = output_dir / "checkpoints"
    return sorted(p.parent for p in root.glob(f"epoch_*/{STATE_NAME}")) if root.is_dir() else []


def has_progress(output_dir: Path) -> bool:
    """Whether `output_dir` holds work worth keeping: a complete checkpoint or a release."""
    return bool(checkpoints(output_dir)) or (output_dir / "model").exists()


def read_state(checkpoint: Path) -> dict:
    """The checkpoint's trainer state; ValueError when it is unreadable."""
    state = json.loads((checkpoint / STATE_NAME).read_text())
    if not (
        isinstance(state, dict)
        and isinstance(state.get("epoch"), int)
        and isinstance(state.get("history"), list)
        and len(state["history"]) == state["epoch"]
    ):
        raise ValueError(f"{STATE_NAME} lacks the epoch and its history")
    return state


def damage(checkpoint: Path) -> str | None:
    """What is wrong with `checkpoint`, or None when every file is as it was written."""
    try:
        state = read_state(checkpoint)
    except (OSError, ValueError) as e:
        return f"{STATE_NAME} is unreadable: {e}"
    for name, (size, digest) in state.get("files", {}).items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
        if _sha256(path) != digest:
            return f"{name} does not match its checksum"
    return None


def check_run_dir(output_dir: Path, run: RunConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from, after checking the directory matches the request."""
    found = checkpoints(output_dir)
    if not resume:
        if has_progress(output_dir):
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} already holds a run: pass --resume to continue it, "
                "or choose another --output-dir"
            )
        return None
    intact = None
    for checkpoint in reversed(found):
        problem = damage(checkpoint)
        if problem is None:
            intact = checkpoint
            break
        logger.warning(
            "--resume: checkpoint %s is damaged (%s): trying the one before", checkpoint.name, problem
        )
    before = _saved_run(output_dir, intact)
    if before is not None and before != run:
        old, new = before.to_dict(), run.to_dict()
        diffs = [
            f"{section}.{key}: {old[section][key]!r} -> {new[section][key]!r}"
            for section in new
            if isinstance(new[section], dict)
            for key in new[section]
            if old[section][key] != new[section][key]
        ]
        raise ConfigError(
            f"--resume: settings differ from the run in {str(output_dir)!r} ({'; '.join(diffs)}): "
            "rerun the original command with --resume"
        )
    if intact is None:
        why = "no intact checkpoint" if found else "no checkpoint"
        logger.warning("--resume: %s in %s; starting from the first epoch", why, output_dir)
    elif intact != found[-1]:
        logger.warning("--resume: continuing from %s, the newest intact checkpoint", intact.name)
    return intact


def _saved_run(output_dir: Path, checkpoint: Path | None) -> RunConfig | None:
    """The settings the run was started with: run_config.json, or the checkpoint's copy if that is damaged."""
    saved = output_dir / RUN_CONFIG_NAME
    try:
        return RunConfig.from_dict(json.loads(saved.read_text()))
    except FileNotFoundError:
        problem = "missing"
    except (ValueError, TypeError, KeyError) as e:
        problem = f"unreadable ({type(e).__name__})"
    if checkpoint is not None and "run" in (state := read_state(checkpoint)):
        logger.warning("--resume: %s is %s: using the copy in %s", RUN_CONFIG_NAME, problem, checkpoint.name)
        return RunConfig.from_dict(state["run"])
    if problem != "missing":
        logger.warning("--resume: %s is %s and no checkpoint holds a copy", RUN_CONFIG_NAME, problem)
    return None


def write_run_config(output_dir: Path, run: RunConfig) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / RUN_CONFIG_NAME, run.to_dict())


def load_history(checkpoint: Path) -> list[dict[str, float]]:
    """The per-epoch history recorded with `checkpoint`."""
    return read_state(checkpoint)["history"]


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: Path,
    epoch: int,
    history: list[dict],
    extra: dict,
    average: WeightAverage | None = None,
) -> None:
    """Accelerate state for epoch `epoch` (and the weights' moving average, when there is one), then its
    trainer state (history, `extra`, the files' checksums); older checkpoints beyond the newest few are
    removed."""
    path = output_dir / "checkpoints" / f"epoch_{epoch:03d}"
    if accelerator.is_main_process and path.exists():
        shutil.rmtree(path)  # a damaged one --resume skipped: written again from scratch
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if average is not None:
            average.save(path)
        files = {p.name: [p.stat().st_size, _sha256(p)] for p in sorted(path.iterdir()) if p.is_file()}
        write_json(path / STATE_NAME, {"epoch": epoch, "history": history, **extra, "files": files})
        for old in checkpoints(output_dir)[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- the frozen part ----------------------------------------------------------------------------------------


def tensors_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of the tensors' bytes, in order."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(tensor_bytes(t))
    return digest.hexdigest()


def keep_out_of_checkpoints(accelerator: Accelerator, frozen: list[nn.Parameter]):
    """Leave the parameters in `frozen` out of the model files of every checkpoint `accelerator` saves;
    returns the hook's handle (`.remove()` it when the run ends)."""
    frozen_ids = {id(p) for p in frozen}

    def drop(models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        for model, state in zip(models, weights, strict=True):
            for name, p in model.named_parameters(remove_duplicate=False):
                if id(p) in frozen_ids:
                    state.pop(name, None)

    return accelerator.register_save_state_pre_hook(drop)


def check_frozen(checkpoint: Path, digest: str) -> None:
    """Refuse to resume when the frozen parameters rebuilt now differ from those the checkpoint trained on."""
    saved = read_state(checkpoint).get("frozen_sha256")
    if saved is not None and saved != digest:
        raise ConfigError(
            f"--resume: the frozen layers differ from those {checkpoint.name} was trained with (were the "
            "pretrained weights replaced?): restore them, or start a new run with another --output-dir"
        )
