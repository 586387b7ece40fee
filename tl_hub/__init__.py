"""tl_hub: transfer learning for image classifiers, end to end: train, publish, serve."""

__version__ = "0.1.0"

from tl_hub.hub import from_pretrained
from tl_hub.inference import Predictor
from tl_hub.models import LeNet5, create_model
from tl_hub.recipes import RECIPES, get_recipe

__all__ = ["RECIPES", "LeNet5", "Predictor", "__version__", "create_model", "from_pretrained", "get_recipe"]
