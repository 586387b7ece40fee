"""Release directories: save_pretrained / from_pretrained, from a local directory or a Hub repo.

A release is `model.safetensors` + `config.json`. Weights are only ever read with safetensors (nothing is
unpickled), and loading is strict: a missing, unexpected or misshapen tensor is an error naming it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tl_hub.config import PreprocessConfig
from tl_hub.errors import TLHubError
from tl_hub.models import create_model

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"  # final metrics per split, the per-epoch history and the data counts


def save_pretrained(model: nn.Module, directory: str | Path, config: dict[str, Any]) -> None:
    """Write the weights (safetensors) and `config` (architecture, labels, preprocess, ...) to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def _resolve_file(repo_or_dir: str | Path, filename: str) -> Path:
    path = Path(repo_or_dir).expanduser()
    if path.is_dir():
        if not (path / filename).is_file():
            raise TLHubError(f"{filename} not found in {str(path)!r}: is it a tl_hub release directory?")
        return path / filename
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(str(repo_or_dir), filename))
    except LocalEntryNotFoundError:
        raise TLHubError(
            f"{str(repo_or_dir)!r} is not a local directory, and the Hub cannot be reached to download it "
            "(offline?): pass a release directory or connect to the Hub"
        ) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as e:
        raise TLHubError(f"cannot load {filename} from {str(repo_or_dir)!r}: {type(e).__name__}") from None
    except (OSError, ValueError) as e:
        raise TLHubError(
            f"{str(repo_or_dir)!r} is neither a local directory nor a reachable Hub repo "
            f"({type(e).__name__}): "
            "pass a release directory, or connect to the Hub"
        ) from None


def load_config(repo_or_dir: str | Path) -> dict[str, Any]:
    """The release's config.json as a dict."""
    return json.loads(_resolve_file(repo_or_dir, CONFIG_NAME).read_text())


def load_metrics(repo_or_dir: str | Path) -> dict[str, Any] | None:
    """The release's metrics.json, or None when the release has none (or it cannot be fetched)."""
    try:
        return json.loads(_resolve_file(repo_or_dir, METRICS_NAME).read_text())
    except (TLHubError, ValueError) as e:
        logger.warning("no metrics for %s: %s", repo_or_dir, e)
        return None


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
    model.load_state_dict(state, strict=True)


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """A randomly initialized model with the architecture and shapes that `config` describes."""
    preprocess = PreprocessConfig.from_dict(config["preprocess"])
    return create_model(
        config["architecture"],
        num_classes=config["num_classes"],
        in_chans=preprocess.channels,
        img_size=preprocess.input_size,
        **config.get("model_args", {}),
    )


def from_pretrained(
    repo_or_dir: str | Path, expected_architecture: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load (model in eval mode, config) from a release directory or a Hub repo id."""
    config = load_config(repo_or_dir)
    if expected_architecture is not None and config.get("architecture") != expected_architecture:
        raise TLHubError(
            f"{str(repo_or_dir)!r} holds architecture {config.get('architecture')!r}, "
            f"not {expected_architecture!r}"
        )
    model = model_from_config(config)
    weights = _resolve_file(repo_or_dir, WEIGHTS_NAME)
    load_state_dict_strict(model, load_file(weights), str(repo_or_dir))
    return model.eval(), config
