"""Loading a release, from a local directory or a Hub repo id: the typed config, then the model, strictly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from tl_hub.errors import TLHubError
from tl_hub.models import create_model
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.files import CONFIG_NAME, METRICS_NAME, WEIGHTS_NAME, load_state_dict_strict, read_json
from tl_hub.release.hub import commit_of, fetch

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


def load_config(repo_or_dir: str | Path, api: HfApi | None = None) -> ReleaseConfig:
    """The release's config.json, parsed and checked (`api`: the Hub client for a repo id, as `fetch`)."""
    return _config_and_file(repo_or_dir, api)[0]


def _config_and_file(repo_or_dir: str | Path, api: HfApi | None) -> tuple[ReleaseConfig, Path]:
    source, file = str(repo_or_dir), fetch(repo_or_dir, CONFIG_NAME, api)
    return ReleaseConfig.from_dict(read_json(file, source), source), file


def load_metrics(repo_or_dir: str | Path, api: HfApi | None = None) -> dict[str, Any] | None:
    """The release's metrics.json, or None when the release has none (or it cannot be fetched)."""
    try:
        return read_json(fetch(repo_or_dir, METRICS_NAME, api), str(repo_or_dir))
    except TLHubError as e:
        logger.warning("no metrics for %s: %s", repo_or_dir, e)
        return None


def model_from_config(config: ReleaseConfig) -> nn.Module:
    """A randomly initialized model with the architecture and shapes that `config` describes."""
    args = dict(config.model_args)
    try:
        return create_model(
            config.architecture,
            num_classes=config.num_classes,
            in_chans=config.preprocess.channels,
            img_size=args.pop(
                "img_size", config.preprocess.input_size
            ),  # what a fixed-size model was built for
            **args,
        )
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:  # arguments that check out one by one
        raise TLHubError(
            f"config.json describes a {config.architecture} that cannot be built ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:120] if str(e) else ''}): is the release damaged?"
        ) from None


def from_pretrained(
    repo_or_dir: str | Path, expected_architecture: str | None = None, api: HfApi | None = None
) -> tuple[nn.Module, ReleaseConfig]:
    """Load (model in eval mode, config) from a release directory or a Hub repo id (`api`: its Hub client).

    From the Hub, the weights come from the commit config.json came from: a push between the two downloads
    cannot pair one commit's config with another's weights."""
    config, config_file = _config_and_file(repo_or_dir, api)
    if expected_architecture is not None and config.architecture != expected_architecture:
        raise TLHubError(
            f"{str(repo_or_dir)!r} holds architecture {config.architecture!r}, not {expected_architecture!r}"
        )
    model = model_from_config(config)
    weights = fetch(repo_or_dir, WEIGHTS_NAME, api, revision=commit_of(config_file))
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise TLHubError(
            f"{WEIGHTS_NAME} of {str(repo_or_dir)!r} cannot be read ({e}): is it truncated? download or "
            "write the release again"
        ) from None
    load_state_dict_strict(model, state, str(repo_or_dir))
    return model.eval(), config
