"""tl_hub: transfer learning for image classifiers, end to end: train, publish, serve.

The public API, imported lazily: `import tl_hub` loads no torch, timm or datasets until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "Predictor": "tl_hub.inference.predictor",
    "from_pretrained": "tl_hub.release.load",
    "ReleaseConfig": "tl_hub.release.config",
    "LeNet5": "tl_hub.models.lenet",
    "create_model": "tl_hub.models.registry",
    "RECIPES": "tl_hub.recipes",
    "get_recipe": "tl_hub.recipes",
}

if TYPE_CHECKING:
    from tl_hub.inference.predictor import Predictor
    from tl_hub.models.lenet import LeNet5
    from tl_hub.models.registry import create_model
    from tl_hub.recipes import RECIPES, get_recipe
    from tl_hub.release.config import ReleaseConfig
    from tl_hub.release.load import from_pretrained

__all__ = [
    "RECIPES",
    "LeNet5",
    "Predictor",
    "ReleaseConfig",
    "__version__",
    "create_model",
    "from_pretrained",
    "get_recipe",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tl_hub' has no attribute {name!r}")
