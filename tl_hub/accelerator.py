"""The process set-up: the one Accelerator each script makes and hands down to everything that trains or
scores (training, evaluation, experiments), with the checks of how the processes were launched."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration

from tl_hub.errors import ConfigError

logger = logging.getLogger(__name__)


def make_accelerator(report_to: tuple[str, ...] = (), project_dir: str | Path | None = None) -> Accelerator:
    """This process's Accelerator: made once by the script, passed to everything that trains or scores.

    Batch sizes are global, as in the study, however many processes share them (`split_batches`).
    `report_to` names the experiment trackers (checked by tl_hub.training.tracking.resolve_trackers), whose
    files go under `project_dir` (OUTPUT_DIR/logs).
    """
    accelerator = Accelerator(
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
        log_with=list(report_to) or None,
        project_dir=None if project_dir is None else str(project_dir),
    )
    check_processes(accelerator)
    check_threads(accelerator)
    return accelerator


def check_threads(accelerator: Accelerator) -> None:
    """Say so when `accelerate launch` left a lone CPU process one thread of several cores.

    Unless told `--num_cpu_threads_per_process`, `accelerate launch` sets OMP_NUM_THREADS=1 for a single
    process (with or without `--cpu`): the quickstart then took 2 min 46 s instead of 1 min 46 s on 2 cores.
    """
    launched = "ACCELERATE_DYNAMO_BACKEND" in os.environ  # set by accelerate launch
    cores = len(os.sched_getaffinity(0))
    lone = accelerator.device.type == "cpu" and accelerator.num_processes == 1 and cores > 1
    if launched and lone and os.environ.get("OMP_NUM_THREADS") == "1" and torch.get_num_threads() == 1:
        logger.warning(
            "accelerate launch gave this CPU process 1 thread of %d cores (OMP_NUM_THREADS=1): pass "
            "--num_cpu_threads_per_process %d to accelerate launch, or run the script with python",
            cores,
            cores,
        )


def check_processes(accelerator: Accelerator) -> None:
    """Refuse processes that were launched together but that Accelerate runs each on its own.

    Without a GPU, `accelerate launch --num_processes N` (or torchrun) starts N processes that Accelerate
    leaves unconnected: each would train the whole run and write the same files.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        raise ConfigError(
            f"{launched} processes were launched but Accelerate runs each alone (no GPU): on the CPU, launch "
            f"with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes {launched} ...`, "
            "or launch one process"
        )
