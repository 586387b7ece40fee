"""SignCNN: a compact batch-normalized CNN for 32x32 traffic signs, the network of the `cnn-gtsrb` recipe.

Three stages of 3x3 convolutions (conv -> BatchNorm -> ReLU, `convs_per_stage` times, then a 2x2 max-pool)
and a fully connected head, in the style of the CNNs that first passed human accuracy on GTSRB (Ciresan et
al. 2012, Sermanet and LeCun 2011) with batch normalization added. About 0.8M parameters at the default
widths; one image takes 2.5 ms through `Predictor` on a 2-core CPU (1.8 ms of it the network).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.base import FeaturesHeadModel


class SignCNN(FeaturesHeadModel):
    """[conv3x3-BN-ReLU] x convs_per_stage -> max-pool, for each width; then FC 256 -> FC num_classes."""

    def __init__(
        self,
        num_classes: int = 43,
        in_chans: int = 3,
        drop_rate: float = 0.3,
        img_size: int = 32,
        widths: Sequence[int] = (32, 64, 128),
        convs_per_stage: int = 2,
        hidden: int = 256,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        side = img_size // 2 ** len(widths)
        if side < 1:
            least = 2 ** len(widths)
            raise ConfigError(
                f"img_size={img_size} is too small for SignCNN: its {len(widths)} 2x2 poolings need {least} "
                f"pixels or more (use an input size of {least} or more: --input-size {least})",
                "preprocess.input_size",
                img_size,
                f"{least} or more for SignCNN",
            )
        layers: list[nn.Module] = []
        self.feature_info = []  # where each stage ends, in timm's form: strategies find the top stage by it
        channels = in_chans
        for stage, width in enumerate(widths):
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
            self.feature_info.append(
                {"num_chs": width, "reduction": 2 ** (stage + 1), "module": f"features.{len(layers) - 1}"}
            )
        self.features = nn.Sequential(*layers)
        self.num_features = hidden
        self.pre_logits = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(drop_rate),
            nn.Linear(channels * side * side, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.fc = nn.Linear(hidden, num_classes)
