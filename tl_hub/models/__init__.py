"""Models: the architecture registry (`registry`), what a built model is (`anatomy`), and the networks."""

from tl_hub.models.lenet import LeNet5
from tl_hub.models.registry import ARCHITECTURES, Architecture, create_model, get_architecture

__all__ = ["ARCHITECTURES", "Architecture", "LeNet5", "create_model", "get_architecture"]
