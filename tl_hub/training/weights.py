"""Starting weights: pretrained weights (timm's, or a local file) under a new classifier, or a whole
tl_hub release."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from tl_hub.config import RunConfig
from tl_hub.errors import TLHubError
from tl_hub.models import Architecture, create_model
from tl_hub.models.anatomy import classifier_name
from tl_hub.release.facts import RANDOM, StartWeights, file_sha256
from tl_hub.release.files import WEIGHTS_NAME, load_state_dict_strict
from tl_hub.release.load import from_pretrained

logger = logging.getLogger(__name__)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: nothing unpickled
    except Exception as e:  # any unreadable or non-tensor file
        raise TLHubError(
            f"cannot read weights file {str(path)!r} ({type(e).__name__}): pass a .safetensors file or a "
            "PyTorch state dict of tensors"
        ) from None
    for key in ("state_dict", "model"):  # checkpoints that wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TLHubError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def load_pretrained_base(model: nn.Module, source: str, base: str) -> str:
    """Load the weights of `model`'s base (the module `base`, e.g. `features.*`) from `source`; returns a
    description.

    `source` is a weights file (.safetensors, or a torchvision/timm state dict read with weights_only) or a
    timm pretrained tag such as "vgg16.tv_in1k", which timm downloads from the Hub.
    """
    path = Path(source).expanduser()
    if path.is_file():
        state, described = _read_state_dict(path), f"file {path}"
    elif "/" in source or path.suffix in (".safetensors", ".pth", ".pt", ".bin"):
        raise TLHubError(f"--pretrained-file {source!r} does not exist")
    else:
        import timm

        try:
            state = timm.create_model(source, pretrained=True).state_dict()
        except Exception as e:  # offline, or the download failed: say how to provide the weights
            raise TLHubError(
                f"cannot get the pretrained weights {source!r} from the Hub ({type(e).__name__}): pass "
                "--pretrained-file PATH (e.g. torchvision's vgg16-397923af.pth or timm's model.safetensors), "
                "or --no-pretrained to start from random weights"
            ) from None
        described = f"timm {source}"
    prefix = base + "."
    tensors = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if not tensors:
        raise TLHubError(f"no convolutional base ({prefix}*) tensors in {described}")
    load_state_dict_strict(model.get_submodule(base), tensors, described)
    logger.info("convolutional base loaded from %s (%d tensors)", described, len(tensors))
    return described


def init_from_release(model: nn.Module, architecture: str, source: str, label_names: list[str]) -> None:
    """Start `model` from a tl_hub release; the classifier is replaced when the label sets differ."""
    donor, config = from_pretrained(source)
    if config.architecture != architecture:
        raise TLHubError(
            f"--init-from {source!r} is a {config.architecture} model; this recipe trains {architecture}"
        )
    state = donor.state_dict()
    if list(config.label_names) != label_names:
        prefix = classifier_name(model) + "."
        fresh = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        state = {**{k: v for k, v in state.items() if not k.startswith(prefix)}, **fresh}
        logger.info(
            "--init-from %s: %d classes there, %d here: the classifier starts fresh",
            source,
            config.num_classes,
            len(label_names),
        )
    load_state_dict_strict(model, state, source)
    logger.info("initialized from %s", source)


def pretrained_model(
    arch: Architecture,
    source: str,
    num_classes: int,
    in_chans: int,
    img_size: int,
    drop_rate: float,
    pooled_head: bool = False,
) -> nn.Module:
    """`arch` with the pretrained weights `source` and a new `num_classes` classifier.

    A family with a sequential base (VGG16) takes the base's weights; any other timm model takes every
    weight but the classifier, from a file or from what timm accepts (a name or tag, `hf-hub:...`,
    `local-dir:...`). The new classifier of a timm model starts at zero, so its first logits are 0 rather
    than the large values of timm's ImageNet-scaled initialization (a loss of ln(classes), not several times
    that), and the first steps do not push pretrained layers around with the gradients of a random head.
    """
    shape = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size, "drop_rate": drop_rate}
    if arch.base is not None:
        model = create_model(arch.name, **shape, pooled_head=pooled_head)
        load_pretrained_base(model, source, arch.base)
        return model
    path = Path(source).expanduser()
    if path.is_file():
        model = create_model(arch.name, **shape, pooled_head=pooled_head)
        prefix = classifier_name(model) + "."
        state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith(prefix)}
        state |= {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        load_state_dict_strict(model, state, f"file {path}")
    else:
        try:
            model = arch.build(pretrained=source, **shape, **arch.family_args(pooled_head))
        except Exception as e:  # offline, a missing directory, a failed download: say how to provide them
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TLHubError(
                f"cannot get the pretrained weights {source!r} ({reason}): pass --model local-dir:PATH (a "
                "timm model directory), --pretrained-file PATH, or --no-pretrained (random weights)"
            ) from None
    with torch.no_grad():
        classifier = model.get_classifier()
        classifier.weight.zero_()
        classifier.bias.zero_()
    logger.info("pretrained weights from %s; new %d-class classifier, zero-initialized", source, num_classes)
    return model


def release_start(source: str | Path) -> StartWeights:
    """A tl_hub release as a start: a Hub repo by its id, a local one by its directory's name (a run's
    OUTPUT_DIR/model by the run's name) and its weights' sha256."""
    local = Path(source).expanduser()
    if not local.is_dir():
        return StartWeights("release", str(source), hub_id=str(source))
    local = local.resolve()
    name = f"{local.parent.name}/model" if local.name == "model" and local.parent.name else local.name
    sha = file_sha256(local / WEIGHTS_NAME) if (local / WEIGHTS_NAME).is_file() else None
    return StartWeights("release", name, sha256=sha)


def start_weights(run: RunConfig) -> StartWeights:
    """Where `run`'s weights start, by a public name: a timm tag or Hub repo as it is, a local file by its
    name and sha256, a local release by its directory's name; never a path of this machine."""
    if not run.transfer.spec.pretrained:
        return RANDOM
    if run.transfer.init_from is not None:
        return release_start(run.transfer.init_from)
    source = run.model.pretrained
    if source is None:
        return RANDOM
    path = Path(source).expanduser()
    if path.is_file():
        return StartWeights("file", path.name, sha256=file_sha256(path))
    if source.startswith("local-dir:"):
        directory = Path(source.removeprefix("local-dir:")).expanduser()
        files = [directory / n for n in (WEIGHTS_NAME, "pytorch_model.bin") if (directory / n).is_file()]
        sha = file_sha256(files[0]) if files else None
        return StartWeights("file", f"local-dir:{directory.resolve().name}", sha256=sha)
    if source.startswith("hf-hub:"):
        repo = source.removeprefix("hf-hub:")
        return StartWeights("pretrained", repo, hub_id=repo)
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(source)
    except (RuntimeError, ValueError):  # a name timm does not know: keep it as given
        cfg = None
    return StartWeights(
        "pretrained", source, hub_id=cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None
    )
