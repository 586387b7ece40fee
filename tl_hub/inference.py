"""Predictor: one image in, the top-k {label: probability} out, with the model's own preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tl_hub.config import PreprocessConfig
from tl_hub.hub import from_pretrained
from tl_hub.transforms import ImageInput, model_input


class Predictor:
    """A trained model with the preprocessing from its config.json."""

    def __init__(self, model: nn.Module, config: dict[str, Any], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.label_names: list[str] = list(config["label_names"])
        self.preprocess = PreprocessConfig.from_dict(config["preprocess"])

    @classmethod
    def from_pretrained(cls, repo_or_dir: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """Load a release directory or a Hub repo id produced by tl_hub."""
        model, config = from_pretrained(repo_or_dir)
        return cls(model, config, device)

    @torch.inference_mode()
    def logits(self, images: list[ImageInput]) -> torch.Tensor:
        """Raw logits (B, num_classes) for a list of images (PIL, paths, bytes or HWC arrays)."""
        return self.model(model_input(images, self.preprocess).to(self.device)).float().cpu()

    def predict(self, images: list[ImageInput], top_k: int = 5) -> list[dict[str, float]]:
        """Top-k {label: probability} per image, most probable first."""
        probs = self.logits(images).softmax(dim=1)
        k = min(top_k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        return [
            {self.label_names[i]: float(p) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)}
            for row_p, row_i in zip(values, indices, strict=True)
        ]

    def __call__(self, image: ImageInput, top_k: int = 5) -> dict[str, float]:
        return self.predict([image], top_k)[0]
