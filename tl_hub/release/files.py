"""The release directory on the local disk: its file names, safetensors weights and strict loading.

A release is `model.safetensors` + `config.json`, with `metrics.json`, plots and the model card beside them.
Weights are only ever read with safetensors (nothing is unpickled), and loading is strict: a missing,
unexpected or misshapen tensor is an error naming it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

from tl_hub.errors import TLHubError

if TYPE_CHECKING:
    from tl_hub.release.config import ReleaseConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"  # final metrics per split, the per-epoch history and the data counts
FACTS_NAME = "facts.json"  # the run's facts: start weights, strategy, data, headline figures, recipe prose
CURVES_NAME = "training_curves.png"
CONFUSION_NAME = "confusion_matrix.png"
CARD_NAME = "README.md"  # the model card; written last, so its presence marks a complete release
RELEASE_FILES = (WEIGHTS_NAME, CONFIG_NAME, METRICS_NAME, FACTS_NAME, CURVES_NAME, CONFUSION_NAME, CARD_NAME)
# A few images from the run's validation split, as the model saw them (examples/NN-label.jpg): what the
# Space offers as examples. Optional; held to these limits wherever they are read, as they may come from
# anyone's Hub repo.
EXAMPLES_DIR = "examples"
MAX_EXAMPLES = 8  # files; one per class for GTSRB's 43 (8 classes spread over them), 4 each for cat and dog
MAX_EXAMPLE_BYTES = 64 * 2**10  # a 224x224 JPEG at quality 85 is 10-20 KB
EXAMPLE_SIDE = 224  # the longest side at most: VGG16's view; a 32x32 sign stays 32x32
# Limits on a release's JSON files, which may come from anyone's Hub repo: a config.json of a million label
# names is about 20 MB, and tl_hub's own files nest 5 deep.
MAX_JSON_BYTES = 32 * 2**20
MAX_JSON_DEPTH = 32


def read_json(path: Path, source: str) -> Any:
    """A release's JSON file, parsed within limits (size, nesting depth); a TLHubError naming the file and
    what is wrong otherwise, never a RecursionError or a parse of gigabytes."""
    too_deep = TLHubError(
        f"{path.name} of {source!r} nests deeper than {MAX_JSON_DEPTH} levels: is it a tl_hub release?"
    )
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise TLHubError(
                f"{path.name} of {source!r} is {size / 2**20:.0f} MB, over the {MAX_JSON_BYTES // 2**20} MB "
                "a release's JSON file may have: is it a tl_hub release?"
            )
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as e:
        raise TLHubError(
            f"{path.name} of {source!r} is not valid JSON ({e}): is the release damaged?"
        ) from None
    except OSError as e:
        raise TLHubError(f"{path.name} of {source!r} cannot be read ({e.strerror or e})") from None
    if _depth_over(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


def _depth_over(data: Any, limit: int) -> bool:
    """Whether `data` nests lists and objects more than `limit` deep (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return False


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON (a NaN or infinite number becomes null), atomically: a reader (another process, a
    rerun after a crash) never sees half a file."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def strict_json(data: Any) -> Any:
    """`data` with every non-finite float replaced by None, which JSON can hold."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [strict_json(v) for v in data]
    return data


def save_pretrained(model: nn.Module, directory: str | Path, config: ReleaseConfig) -> Path:
    """Write `model`'s weights (safetensors) and `config` (config.json): a release that loads anywhere."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    write_json(directory / CONFIG_NAME, config.to_dict())
    return directory


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`, refusing any difference in tensor names or shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    # A float tensor stored as integers (or the reverse) would be cast on loading, silently: refused.
    mistyped = [
        f"{k} is {str(state[k].dtype).removeprefix('torch.')}, expected "
        + ("a floating-point type" if v.is_floating_point() else str(v.dtype).removeprefix("torch."))
        for k, v in expected.items()
        if k in state
        and (
            state[k].is_floating_point() != v.is_floating_point()
            or state[k].is_complex()
            or (not v.is_floating_point() and state[k].dtype != v.dtype)
        )
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:5])}")
    if misshapen:
        problems.append(f"shape mismatch (file vs model): {', '.join(misshapen[:5])}")
    if mistyped:
        problems.append(f"wrong dtype: {', '.join(mistyped[:5])}")
    if problems:
        raise TLHubError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(problems))
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise TLHubError(
            f"weights in {source} are not finite (NaN or infinite) in {len(broken)} of {len(state)} tensors, "
            f"{broken[0]} first: the training diverged; retrain with a lower --lr"
        )
    model.load_state_dict(state, strict=True)


def example_files(directory: Path) -> list[Path]:
    """The release's example images (`EXAMPLES_DIR/*.jpg`, regular files within `MAX_EXAMPLE_BYTES`), at most
    `MAX_EXAMPLES`, in name order; others are passed over."""
    found = sorted((Path(directory) / EXAMPLES_DIR).glob("*.jpg"))
    fits = [p for p in found if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_EXAMPLE_BYTES]
    return fits[:MAX_EXAMPLES]


def release_files(directory: Path) -> list[str]:
    """What a release holds, as paths within it: the `RELEASE_FILES` present, then its example images."""
    names = [name for name in RELEASE_FILES if (Path(directory) / name).is_file()]
    return names + [f"{EXAMPLES_DIR}/{p.name}" for p in example_files(directory)]


def release_dir(path: str | Path) -> Path:
    """The release directory of `path`: a run directory (holding model/) or the release itself."""
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / CONFIG_NAME).is_file() and (candidate / WEIGHTS_NAME).is_file():
            return candidate
    raise TLHubError(
        f"no release in {str(path)!r}: pass a run directory (with model/) or a release directory "
        "(with config.json and model.safetensors)"
    )
