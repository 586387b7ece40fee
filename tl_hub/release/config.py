"""config.json, typed: what it takes to rebuild a release's model and feed it, plus how it was trained.

Parsed once, with every field checked, by `ReleaseConfig.from_dict`; every consumer (training's
`--init-from`, evaluation, `Predictor`, the Space, the model card) reads the typed fields. The JSON keeps
timm's vocabulary (`architecture`, `num_classes`, `label_names`, `pretrained_cfg`), so a release of a timm
architecture also loads with `timm.create_model("hf-hub:USER/NAME", pretrained=True)`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tl_hub import __version__
from tl_hub.config import MAX_CLASSES, PreprocessConfig, RunConfig
from tl_hub.errors import ConfigError, TLHubError
from tl_hub.models import get_architecture

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseConfig:
    architecture: str  # a tl_hub network (tl_hub.models.ARCHITECTURES) or any timm architecture
    label_names: tuple[str, ...]  # the model's outputs, in order
    preprocess: PreprocessConfig  # how an image becomes the model's input
    model_args: Mapping[str, Any]  # constructor arguments besides num_classes / in_chans / img_size
    recipe: str | None = None
    training: RunConfig | None = None  # the whole run that trained it (None for a model built otherwise)
    tl_hub_version: str = __version__

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @classmethod
    def from_run(cls, run: RunConfig, label_names: list[str]) -> ReleaseConfig:
        arch = get_architecture(run.model.architecture)
        return cls(
            architecture=arch.name,
            label_names=tuple(label_names),
            preprocess=run.preprocess,
            model_args=arch.model_args(run.model.drop_rate, run.preprocess.input_size, run.model.pooled_head),
            recipe=run.recipe,
            training=run,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of config.json."""
        config: dict[str, Any] = {
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "label_names": list(self.label_names),
            "model_args": dict(self.model_args),
            "preprocess": dataclasses.asdict(self.preprocess),
            "recipe": self.recipe,
        }
        if self.training is not None:  # with recipe and preprocess: the whole RunConfig
            run = self.training.to_dict()
            config["training"] = {k: v for k, v in run.items() if k not in ("recipe", "preprocess")}
        config["tl_hub_version"] = self.tl_hub_version
        if get_architecture(self.architecture).timm:
            config["pretrained_cfg"] = timm_pretrained_cfg(self.preprocess, self.num_classes)
        return config

    @classmethod
    def from_dict(cls, d: Any, source: str) -> ReleaseConfig:
        """Parse and check a config.json object; a TLHubError names the field, the value and `source`."""

        def bad(field: str, problem: str) -> TLHubError:
            return TLHubError(f"config.json of {source!r}: {field} {problem}; is it a tl_hub release?")

        if not isinstance(d, dict):
            raise bad("the whole file", f"is a {type(d).__name__}, not a JSON object")
        for key in ("architecture", "label_names", "preprocess"):
            if key not in d:
                raise bad(key, "is missing")
        try:
            arch = get_architecture(d["architecture"])
        except (ConfigError, TypeError) as e:
            raise bad("architecture", str(e)) from None
        labels = d["label_names"]
        if not (isinstance(labels, list) and labels and all(isinstance(n, str) and n for n in labels)):
            raise bad("label_names", f"= {str(labels)[:60]!r} is not a non-empty list of names")
        if len(labels) > MAX_CLASSES:
            raise bad(
                "label_names", f"has {len(labels):,} names, more than the {MAX_CLASSES:,} a model may have"
            )
        repeated = [name for name, n in Counter(labels).items() if n > 1]
        if repeated:
            raise bad("label_names", f"repeat {repeated[0][:60]!r}: each output needs its own name")
        num_classes = d.get("num_classes", len(labels))
        if not (type(num_classes) is int and num_classes == len(labels)):
            raise bad("num_classes", f"= {num_classes!r} differs from the {len(labels)} label_names")
        args = d.get("model_args", {})
        allowed = arch.model_args(0.0, 8)
        if not isinstance(args, dict) or set(args) - set(allowed):
            raise bad("model_args", f"= {str(args)[:80]!r} is not a subset of {sorted(allowed)}")
        for key, value in args.items():
            if (problem := _arg_problem(key, value, allowed[key])) is not None:
                raise bad(f"model_args.{key}", f"= {str(value)[:40]!r} is invalid: expected {problem}")
        try:
            preprocess = PreprocessConfig.from_dict(d["preprocess"])
        except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as e:
            raise bad("preprocess", f"is invalid ({e})") from None
        training = None
        if d.get("training") is not None:
            try:
                training = RunConfig.from_dict(
                    {"recipe": d.get("recipe"), "preprocess": d["preprocess"], **d["training"]}
                )
            except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as e:
                # Only the model card and the Space's summary read it: the model still loads without it.
                logger.warning(
                    "config.json of %r: its training record is unreadable (%s); ignored", source, e
                )
        return cls(
            architecture=arch.name,
            label_names=tuple(labels),
            preprocess=preprocess,
            model_args={**arch.args, **args},
            recipe=d.get("recipe"),
            training=training,
            tl_hub_version=str(d.get("tl_hub_version", "unknown")),
        )


# Bounds of a model constructor's numbers in config.json: beyond them a model would not fit in memory.
MAX_ARG = 65536
MAX_ARG_ITEMS = 64


def _arg_problem(key: str, value: Any, default: Any) -> str | None:
    """What a model_args value should be, when it is not of its default's kind and within reason."""
    if key == "drop_rate":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
        return None if ok else "a probability in [0, 1)"
    if key == "img_size":
        ok = type(value) is int and 8 <= value <= 4096
        return None if ok else "an integer from 8 to 4096"
    if isinstance(default, list | tuple):
        ok = isinstance(value, list) and 0 < len(value) <= MAX_ARG_ITEMS
        ok = ok and all(_arg_problem(key, v, default[0]) is None for v in value)
        return None if ok else f"a list of 1 to {MAX_ARG_ITEMS} numbers like {list(default)}"
    if type(default) is int:
        return None if type(value) is int and 0 < value <= MAX_ARG else f"an integer from 1 to {MAX_ARG}"
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_ARG
    return None if ok else f"a number in (0, {MAX_ARG}]"


def timm_pretrained_cfg(p: PreprocessConfig, num_classes: int) -> dict[str, Any]:
    """The same preprocessing in timm's vocabulary, for `timm.create_model("hf-hub:...")` users.

    timm has no grayscale or equalization step: those are tl_hub-only and stay in `preprocess`.
    """
    return {
        "input_size": [p.channels, p.input_size, p.input_size],
        "interpolation": p.interpolation,
        "mean": list(p.mean),
        "std": list(p.std),
        "crop_pct": 1.0 if p.crop_pct is None else p.crop_pct,
        "crop_mode": "squash" if p.crop_pct is None else "center",
        "num_classes": num_classes,
    }
