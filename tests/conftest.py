"""Shared fixtures: tiny datasets in every local format, built from tl_hub's synthetic signs."""

from __future__ import annotations

import io
import os
import runpy
import sys
import tempfile
from pathlib import Path

# Offline before anything imports huggingface_hub or datasets (they read these once, at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# huggingface_hub of this test session only: a home of its own (no cache or stored token of the user's, no
# HF_TOKEN), Xet and telemetry off, and a default endpoint on a closed port, so that a test reaches the local
# Hub server (tests/hub_server.py) only through the HfApi it passes, or the fixture that patches the defaults.
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HUGGINGFACE_HUB_CACHE", None)
os.environ.pop("HF_ASSETS_CACHE", None)
os.environ.pop("HF_XET_CACHE", None)
os.environ.pop("HF_DATASETS_CACHE", None)
os.environ.pop("HF_TOKEN_PATH", None)
os.environ.pop("HF_STORED_TOKENS_PATH", None)
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HUGGING_FACE_HUB_TOKEN", None)
os.environ.pop("HF_OIDC_RESOURCE", None)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tl_hub-test-hf-home-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing answers there
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Caches (decoded images, features) of this test session only: never the user's ~/.cache/tl_hub.
os.environ.setdefault("TL_HUB_CACHE", tempfile.mkdtemp(prefix="tl_hub-test-cache-"))

import datasets
import numpy as np
import pytest
from PIL import Image

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.synthetic import generate_signs

from .hub_server import fake_hub, hub  # noqa: F401 - the local Hub-API server fixtures, for every test module

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 5  # a small label set keeps format tests fast


def trained_release_files() -> list[str]:
    """What a trained release directory holds, sorted: the release files and the examples/ folder."""
    from tl_hub.release.files import EXAMPLES_DIR, RELEASE_FILES

    return sorted([*RELEASE_FILES, EXAMPLES_DIR])


def run_entry_point(
    script: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> tuple[int, str, str]:
    """Run a script's `__main__` in this process (fast); returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos() -> list[tuple[str, bytes]]:
    """Real-world photo files: odd modes, EXIF rotation, and four unreadable ones (the last four)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    jpeg = encoded(rgb, "JPEG")
    rotated = rgb.copy()
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees when shown
    bomb = Image.new("1", (14_000, 14_000))  # 196 megapixels in a few KB: over PIL's decompression-bomb limit
    return [
        ("photo.jpg", jpeg),
        ("cmyk.jpg", encoded(rgb.convert("CMYK"), "JPEG")),
        ("gray.png", encoded(rgb.convert("L"), "PNG")),
        ("palette.png", encoded(rgb.convert("P"), "PNG")),
        ("rgba.png", encoded(rgb.convert("RGBA"), "PNG")),
        (
            "sixteen_bit.png",
            encoded(Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)), "PNG"),
        ),
        ("tiny.png", encoded(rgb.resize((1, 1)), "PNG")),
        ("animated.gif", encoded(rgb.convert("P"), "GIF", save_all=True, append_images=[rgb.convert("P")])),
        ("exif_rotated.jpg", encoded(rotated, "JPEG", exif=exif)),
        ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        ("not_an_image.jpg", b"<html>404 Not Found</html>"),
        ("empty.jpg", b""),
        ("bomb.png", encoded(bomb, "PNG")),
    ]


@pytest.fixture(scope="session")
def signs() -> tuple[np.ndarray, np.ndarray]:
    """12 rendered signs for each of the first NUM_CLASSES classes: 4 tracks of 3 frames each."""
    images, labels = generate_signs(12, seed=123)
    keep = labels < NUM_CLASSES
    return images[keep], labels[keep]


@pytest.fixture(scope="session")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory, signs: tuple[np.ndarray, np.ndarray]) -> Path:
    """A Hub-style parquet dataset (train only) with GTSRB file names CCCCC/TTTTT_FFFFF.ppm."""
    images, labels = signs
    root = tmp_path_factory.mktemp("parquet")
    frame: dict[int, int] = {}
    rows = []
    for array, label in zip(images, labels, strict=True):
        i = frame.get(int(label), 0)
        frame[int(label)] = i + 1
        path = f"{label:05d}/{i // 3:05d}_{i % 3:05d}.ppm"  # 3 frames per track
        rows.append({"bytes": png_bytes(array), "path": path})
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(GTSRB_CLASS_NAMES[:NUM_CLASSES]))}
    )
    ds = datasets.Dataset.from_dict({"image": rows, "label": labels.tolist()}, features=features)
    (root / "data").mkdir()
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="session")
def imagefolder_dir(tmp_path_factory: pytest.TempPathFactory, signs: tuple[np.ndarray, np.ndarray]) -> Path:
    """An image folder: train/<class name>/<n>.png and test/<class name>/<n>.png."""
    images, labels = signs
    root = tmp_path_factory.mktemp("imagefolder")
    for n, (array, label) in enumerate(zip(images, labels, strict=True)):
        split = "test" if n % 4 == 0 else "train"
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / f"{n}.png")
    return root


@pytest.fixture(scope="session")
def disk_dir(tmp_path_factory: pytest.TempPathFactory, signs: tuple[np.ndarray, np.ndarray]) -> Path:
    """A save_to_disk DatasetDict with non-standard column names (img, ClassId)."""
    images, labels = signs
    root = tmp_path_factory.mktemp("disk")
    features = datasets.Features(
        {"img": datasets.Image(), "ClassId": datasets.ClassLabel(names=[f"c{i}" for i in range(NUM_CLASSES)])}
    )
    ds = datasets.Dataset.from_dict({"img": list(images), "ClassId": labels.tolist()}, features=features)
    split = ds.train_test_split(test_size=0.25, seed=0, stratify_by_column="ClassId")
    datasets.DatasetDict(train=split["train"], validation=split["test"]).save_to_disk(str(root))
    return root


def write_fake_release(directory: Path, model, run, label_names: list[str], examples=None) -> Path:
    """A release of `model` as `run` would write it, with made-up metrics (3 epochs, a fair model);
    `examples`: the SplitData its example images come from."""
    from tl_hub.data.naming import dataset_name
    from tl_hub.metrics import classification_metrics
    from tl_hub.release.config import ReleaseConfig
    from tl_hub.release.facts import public_run, run_facts
    from tl_hub.release.writer import write_release
    from tl_hub.training.provenance import recipe_text
    from tl_hub.training.weights import start_weights

    n = len(label_names)
    labels = np.arange(n).repeat(2)
    logits = np.random.default_rng(0).normal(size=(2 * n, n)) + 3 * np.eye(n)[labels]
    evaluation = classification_metrics(logits, labels, label_names)
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 0.5,
            "val_loss": 1.1 / e,
            "val_accuracy": 0.4 + e / 10,
            "seconds": 1.0,
        }
        for e in (1, 2, 3)
    ]
    metrics = {
        "recipe": run.recipe,
        "dataset": dataset_name(run.data),
        "validation": evaluation,
        "test": evaluation,
        "history": history,
        "data": {
            "counts": {"train": 100, "validation": 2 * n, "test": 2 * n},
            "validation_from": "10% of train",
            "skipped_images": 0,
            "fingerprints": {},
        },
    }
    facts = run_facts(run, start_weights(run), recipe_text(run), metrics, n)
    config = ReleaseConfig.from_run(public_run(run, facts), label_names)
    return write_release(directory, model, config, metrics, facts, examples)


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release directory of an untrained LeNet-5 (43 GTSRB classes) with made-up history and metrics."""
    import torch

    from tl_hub import LeNet5
    from tl_hub.recipes import get_recipe

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("release") / "model"
    return write_fake_release(
        directory, LeNet5(num_classes=43), get_recipe("lenet-gtsrb").config, list(GTSRB_CLASS_NAMES)
    )


@pytest.fixture(scope="session")
def vgg16_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained vgg16-catsdogs release at 64x64 (random weights)."""
    import dataclasses

    import torch

    from tl_hub.models import create_model
    from tl_hub.recipes import get_recipe

    recipe = get_recipe("vgg16-catsdogs").config
    run = dataclasses.replace(
        recipe,
        preprocess=dataclasses.replace(recipe.preprocess, input_size=64),
        model=dataclasses.replace(recipe.model, pretrained=None),
    )
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=64, drop_rate=0.5)
    return write_fake_release(tmp_path_factory.mktemp("vgg16") / "model", model, run, ["cat", "dog"])
