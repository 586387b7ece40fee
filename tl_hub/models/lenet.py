"""LeNet-5 (LeCun et al., 1998) as the study used it on GTSRB (timm's interface comes from models/base.py).

Modern variant, as in the study: ReLU instead of scaled tanh, max pooling instead of trainable subsampling,
and a fully connected C5 (equivalent to LeCun's 5x5 convolution on a 5x5 map), with dropout on the FC layers.
"""

from __future__ import annotations

from torch import nn

from tl_hub.errors import ConfigError
from tl_hub.models.base import FeaturesHeadModel


class LeNet5(FeaturesHeadModel):
    """conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> FC 120 -> FC 84 -> FC num_classes.

    For 32x32 input, forward_features gives (B, 16, 5, 5) and forward_head(pre_logits=True) (B, 84).
    """

    def __init__(self, num_classes: int = 43, in_chans: int = 1, drop_rate: float = 0.3, img_size: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.img_size = img_size
        # Each 5x5 valid convolution trims 4 pixels and each pool halves: 32 -> 28 -> 14 -> 10 -> 5.
        side = ((img_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ConfigError(
                f"img_size={img_size} is too small for LeNet-5: its two pooled 5x5 convolutions need 16 "
                "pixels or more (use an input size of 16 or more: --input-size 16)",
                "preprocess.input_size",
                img_size,
                "16 or more for LeNet-5",
            )
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.num_features = 84
        self.pre_logits = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.fc = nn.Linear(84, num_classes)
        # Where each stage ends, in timm's form: strategies find the last conv block from it.
        self.feature_info = [
            {"num_chs": 6, "reduction": 2, "module": "features.2"},
            {"num_chs": 16, "reduction": 4, "module": "features.5"},
        ]
