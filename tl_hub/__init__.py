"""tl_hub: transfer learning for image classifiers, end to end: train, publish, serve."""

__version__ = "0.1.0"

from tl_hub.inference.predictor import Predictor
from tl_hub.models import LeNet5, create_model
from tl_hub.recipes import RECIPES, get_recipe
from tl_hub.release.io import from_pretrained

__all__ = ["RECIPES", "LeNet5", "Predictor", "__version__", "create_model", "from_pretrained", "get_recipe"]
