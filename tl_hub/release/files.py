"""The release directory on the local disk: its file names, safetensors weights and strict loading.

A release is `model.safetensors` + `config.json`, with `metrics.json`, plots and the model card beside them.
Weights are only ever read with safetensors (nothing is unpickled), and loading is strict: a missing,
unexpected or misshapen tensor is an error naming it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

from tl_hub.errors import TLHubError

if TYPE_CHECKING:
    from tl_hub.release.config import ReleaseConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"  # final metrics per split, the per-epoch history and the data counts
FACTS_NAME = "facts.json"  # the run's facts: start weights, strategy, data, headline figures, recipe prose
CURVES_NAME = "training_curves.png"
CONFUSION_NAME = "confusion_matrix.png"
CARD_NAME = "README.md"  # the model card; written last, so its presence marks a complete release
RELEASE_FILES = (WEIGHTS_NAME, CONFIG_NAME, METRICS_NAME, FACTS_NAME, CURVES_NAME, CONFUSION_NAME, CARD_NAME)


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON (a NaN or infinite number becomes null), atomically: a reader (another process, a
    rerun after a crash) never sees half a file."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def strict_json(data: Any) -> Any:
    """`data` with every non-finite float replaced by None, which JSON can hold."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [strict_json(v) for v in data]
    return data


def save_pretrained(model: nn.Module, directory: str | Path, config: ReleaseConfig) -> Path:
    """Write `model`'s weights (safetensors) and `config` (config.json): a release that loads anywhere."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    write_json(directory / CONFIG_NAME, config.to_dict())
    return directory


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`, refusing any difference in tensor names or shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:5])}")
    if misshapen:
        problems.append(f"shape mismatch (file vs model): {', '.join(misshapen[:5])}")
    if problems:
        raise TLHubError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(problems))
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise TLHubError(
            f"weights in {source} are not finite (NaN or infinite) in {len(broken)} of {len(state)} tensors, "
            f"{broken[0]} first: the training diverged; retrain with a lower --lr"
        )
    model.load_state_dict(state, strict=True)


def release_dir(path: str | Path) -> Path:
    """The release directory of `path`: a run directory (holding model/) or the release itself."""
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / CONFIG_NAME).is_file() and (candidate / WEIGHTS_NAME).is_file():
            return candidate
    raise TLHubError(
        f"no release in {str(path)!r}: pass a run directory (with model/) or a release directory "
        "(with config.json and model.safetensors)"
    )
