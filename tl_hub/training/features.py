"""Bottleneck features: the frozen convolutional base run once per image, cached on disk.

With the feature-extract strategy only the head learns, so the base's output for an image never changes:
computing it once and training the head on the cached tensors turns each epoch into a pass over a small MLP.
With finetune-top on a sequential base (VGG16, LeNet-5) the layers below the last stage never train, so
their output per view is cached the same way, and each epoch runs only the last stage and the head.
The cache key hashes the base's weights, the preprocessing, the images (and the augmentation of any extra
views), so a rerun finds it and any change misses it. Location: $TL_HUB_CACHE/features (default
~/.cache/tl_hub/features).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tl_hub.config import AugConfig, PreprocessConfig, cache_root
from tl_hub.data.augment import BatchAugment
from tl_hub.data.store import ImageStore
from tl_hub.models.anatomy import feature_shape, head_input
from tl_hub.progress import Progress
from tl_hub.scoring import image_inputs

logger = logging.getLogger(__name__)

EXTRACT_BATCH_SIZE = 64  # images prepared (decoded, augmented) at a time
# Images the network runs on at a time on a CPU: a VGG16 batch of 64 at 224x224 moves 0.8 GB per early
# activation through memory, while two images' activations stay in the L3 cache; the base runs 1.1-1.2x
# faster in chunks of 2 than in batches of 64 or 16 (benchmarks/vgg16_cpu.py). GPUs take the whole batch.
CPU_CHUNK = 2


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 autocast speeds the base up on `device`.

    Yes on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX). No on others: on an AVX2-only CPU oneDNN
    emulates bf16 and the VGG16 base ran 5-8x slower than in fp32 (BENCHMARKS.md).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cache_dir() -> Path:
    return cache_root() / "features"


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's raw bytes, whatever its dtype and device: what fingerprints and digests hash."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def fingerprint(
    frozen: dict[str, torch.Tensor],
    preprocess: PreprocessConfig,
    images: torch.Tensor | ImageStore,
    views: int,
    aug: AugConfig,
    seed: int,
    bf16: bool,
) -> str:
    """A key that changes with anything that changes the features."""
    h = hashlib.sha256()
    for name, tensor in sorted(frozen.items()):
        h.update(name.encode())
        h.update(tensor_bytes(tensor))
    h.update(json.dumps(preprocess.pixel_settings(), sort_keys=True).encode())
    if isinstance(images, ImageStore):  # the disk cache's digest of its pixels
        h.update(str(("store", images.shape, images.digest)).encode())
    else:
        h.update(str((tuple(images.shape), images.dtype)).encode())
        h.update(images.contiguous().numpy().tobytes())
    if views:
        h.update(json.dumps([dataclasses.asdict(aug), views, seed], sort_keys=True).encode())
    h.update(b"bf16" if bf16 else b"fp32")
    return h.hexdigest()[:32]


def extract(
    model: nn.Module,
    images: torch.Tensor | ImageStore,
    preprocess: PreprocessConfig,
    device: torch.device,
    bf16: bool = False,
    augment: BatchAugment | None = None,
    generator: torch.Generator | None = None,
    desc: str = "features",
    kind: str = "features",
    chunk: int | None = None,
) -> torch.Tensor:
    """What the head reads (`kind`: forward_features, or the pooled pre-logits) for uint8 `images`
    (N, C, H, W), in batches, channels_last, bf16 if `bf16`. On a CPU the network runs on `chunk` images
    at a time (default CPU_CHUNK): the same features within float rounding, only faster."""
    model.eval()
    # oneDNN's and cuDNN's fast convolution layout (4-D weights only); outside inference mode, so the
    # weights stay trainable
    model.to(memory_format=torch.channels_last)
    prepare = image_inputs(preprocess, augment)  # training's own batch preparation
    size = chunk or (CPU_CHUNK if device.type == "cpu" else EXTRACT_BATCH_SIZE)
    out = []
    bar = Progress(
        range(0, len(images), EXTRACT_BATCH_SIZE), desc=f"extracting features: {desc}", leave=False
    )
    for i in bar:
        x = prepare(images[i : i + EXTRACT_BATCH_SIZE], generator)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.extend(head_input(model, part, kind).cpu() for part in x.split(size))
    return torch.cat(out)


def cached_features(
    model: nn.Module,
    images: torch.Tensor | ImageStore,
    labels: torch.Tensor,
    preprocess: PreprocessConfig,
    device: torch.device,
    *,
    frozen: dict[str, torch.Tensor],
    kind: str = "features",
    views: int = 0,
    aug: AugConfig | None = None,
    seed: int = 0,
    fast: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of `images`: from the cache, or computed and cached.

    views=0 gives one clean view per image; views=K gives K augmented views (labels repeated K times).
    `frozen` is the state the features depend on (every weight no epoch trains); `kind` is what the cache
    holds (tl_hub.models.anatomy.head_input): what the head reads, or a sequential base's frozen prefix's
    output, on which its last stage trains with the head.
    """
    aug = aug or AugConfig()
    bf16 = fast and bf16_pays(device)
    key = fingerprint(frozen, preprocess, images, views, aug, seed, bf16) + (
        "" if kind == "features" else kind.replace(":", "-")
    )
    path = cache_dir() / f"{key}.safetensors"
    shape = feature_shape(model, preprocess.channels, preprocess.input_size, kind)
    if path.exists():
        cached = load_file(path)
        if tuple(cached["features"].shape[1:]) == shape:
            logger.info("%s: feature cache hit (%s)", desc, path.name)
            return cached["features"], cached["labels"]
        logger.warning("%s: cache entry %s holds another shape; computing it again", desc, path.name)
    start = time.perf_counter()
    if views:
        augment = BatchAugment(aug)
        parts = [
            extract(
                model,
                images,
                preprocess,
                device,
                bf16,
                augment,
                torch.Generator().manual_seed(seed * 100 + v),
                desc=f"{desc} view {v + 1}/{views}",
                kind=kind,
            )
            for v in range(views)
        ]
        features, labels = torch.cat(parts), labels.repeat(views)
    else:
        features = extract(model, images, preprocess, device, bf16, desc=desc, kind=kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"features": features.contiguous(), "labels": labels.contiguous()}, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
    logger.info(
        "%s: %d feature maps %s computed in %.1fs and cached (%s)",
        desc,
        len(features),
        tuple(features.shape[1:]),
        time.perf_counter() - start,
        path.name,
    )
    return features, labels
