"""`--model NAME`: what timm accepts (an architecture name or name.tag, `hf-hub:ORG/NAME`, `local-dir:PATH`),
resolved to the architecture, where its pretrained weights come from, and the preprocessing they expect.

The preprocessing is read from the weights' own `pretrained_cfg` (input size, interpolation, crop, mean and
std), as timm's `resolve_data_config` does, so weights trained under another convention (EfficientNet-Lite's
[-1, 1] scaling, say) are fed what they were trained on.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_hub.config import INTERPOLATIONS, PreprocessConfig
from tl_hub.errors import ConfigError
from tl_hub.models.registry import ARCHITECTURES


@dataclass(frozen=True)
class ModelSource:
    architecture: str  # the timm architecture (or a hand-written family's name)
    weights: str | None  # what timm.create_model(..., pretrained=True) loads; None when none are known
    preprocess: PreprocessConfig | None  # what the weights expect; None for a hand-written family


def preprocess_from_cfg(cfg: Any) -> PreprocessConfig:
    """A timm `pretrained_cfg` (a PretrainedCfg or its dict) as tl_hub's preprocessing."""
    get = cfg.get if isinstance(cfg, dict) else lambda key, default=None: getattr(cfg, key, default)
    interpolation = get("interpolation", "bilinear")
    crop_pct = get("crop_pct", 0.875)
    return PreprocessConfig(
        input_size=int(get("input_size", (3, 224, 224))[-1]),
        mean=tuple(float(m) for m in get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(s) for s in get("std", (0.229, 0.224, 0.225))),
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_pct=None if get("crop_mode", "center") == "squash" else float(crop_pct),
    )


def resolve_model(name: str) -> ModelSource:
    """What `--model name` means; a ConfigError naming the value and what would do otherwise."""
    import timm
    from timm.models import parse_model_name, split_model_name_tag

    if name in ARCHITECTURES:
        return ModelSource(name, None, None)
    source, identifier = parse_model_name(name)
    if source == "local-dir":
        path = Path(identifier).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"--model {name}: {str(path)!r} holds no config.json: pass a directory saved by timm "
                "(config.json and model.safetensors)"
            )
        from timm.models._hub import load_model_config_from_path

        cfg, architecture, _ = load_model_config_from_path(path)
        return ModelSource(architecture, name, preprocess_from_cfg(cfg))
    if source == "hf-hub":
        from timm.models._hub import load_model_config_from_hf

        try:
            cfg, architecture, _ = load_model_config_from_hf(identifier)
        except Exception as e:  # offline, no such repo: the one line says how to go on
            raise ConfigError(
                f"--model {name}: cannot read its config from the Hub ({type(e).__name__}): check the repo "
                "id, or pass a local copy as --model local-dir:PATH"
            ) from None
        return ModelSource(architecture, name, preprocess_from_cfg(cfg))
    architecture, _ = split_model_name_tag(identifier)
    if not timm.is_model(architecture):
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        raise ConfigError(
            f"--model {name}: no such timm model: pass a name from timm.list_models()"
            + (f" (close: {', '.join(close)})" if close else "")
            + ", hf-hub:ORG/NAME or local-dir:PATH"
        )
    cfg = timm.models.get_pretrained_cfg(identifier)
    if cfg is None:  # no pretrained weights registered (timm's test models): its default preprocessing
        return ModelSource(architecture, None, preprocess_from_cfg({}))
    return ModelSource(architecture, identifier, preprocess_from_cfg(cfg))
