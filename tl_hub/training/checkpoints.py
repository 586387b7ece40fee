"""The run directory's resume state: run_config.json and the per-epoch Accelerate checkpoints."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from accelerate import Accelerator

from tl_hub.config import RunConfig
from tl_hub.errors import ConfigError
from tl_hub.release.files import write_json

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
STATE_NAME = "trainer_state.json"  # written last: a checkpoint without it is incomplete
CHECKPOINTS_KEPT = 2


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = output_dir / "checkpoints"
    return sorted(p.parent for p in root.glob(f"epoch_*/{STATE_NAME}")) if root.is_dir() else []


def check_run_dir(output_dir: Path, run: RunConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from, after checking the directory matches the request."""
    found = checkpoints(output_dir)
    saved = output_dir / RUN_CONFIG_NAME
    if not resume:
        if found or (output_dir / "model").exists():
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} already holds a run: pass --resume to continue it, "
                "or choose another --output-dir"
            )
        return None
    if saved.exists():
        before = RunConfig.from_dict(json.loads(saved.read_text()))
        if before != run:
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
    if not found:
        logger.warning("--resume: no checkpoint in %s yet; starting from the first epoch", output_dir)
        return None
    return found[-1]


def write_run_config(output_dir: Path, run: RunConfig) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / RUN_CONFIG_NAME, run.to_dict())


def load_history(checkpoint: Path) -> list[dict[str, float]]:
    """The per-epoch history recorded with `checkpoint`."""
    return json.loads((checkpoint / STATE_NAME).read_text())["history"]


def save_checkpoint(accelerator: Accelerator, output_dir: Path, epoch: int, history: list[dict]) -> None:
    """Accelerate state for epoch `epoch`; older checkpoints beyond the newest few are removed."""
    path = output_dir / "checkpoints" / f"epoch_{epoch:03d}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(path / STATE_NAME, {"epoch": epoch, "history": history})
        for old in checkpoints(output_dir)[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
