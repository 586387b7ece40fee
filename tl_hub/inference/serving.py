"""What the Space serves, without the page: each tab's model, what the page says about it, its examples.

Finding the newest fitting release under `runs/`, the model summary (from config.json and facts.json),
example signs rendered by tl_hub and example photos fetched from the model's Hub dataset, and the port
checks made before serving. `spaces/app.py` builds the page and its events around these; nothing here
imports gradio.
"""

from __future__ import annotations

import argparse
import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

from tl_hub.data.images import read_image
from tl_hub.errors import TLHubError
from tl_hub.inference.predictor import Predictor
from tl_hub.release.facts import Facts, load_facts

logger = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # 40 megapixels: any phone photo, but no decompression bomb

# Photos for the pets tab: a few from the Hub dataset its model was trained on, fetched once and cached.
EXAMPLE_PHOTOS = 6

# Signs rendered by tl_hub's synthetic generator as examples: (GTSRB class id, seed).
EXAMPLE_SIGNS = [(c, 2026) for c in (14, 13, 2, 12, 17, 28, 38, 40)]
EXAMPLE_SIZE = 128


def local_release(kind: str, roots: tuple[Path, ...]) -> Path | None:
    """The newest release `runs/*/model` whose labels fit the tab: GTSRB's 43 signs, or cat and dog."""
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
    from tl_hub.release.load import load_config

    fits = {"sign": set(GTSRB_CLASS_NAMES), "pet": {"cat", "dog"}}[kind]
    found = []
    for root in dict.fromkeys(r.resolve() for r in roots):
        for directory in root.glob("*/model"):
            try:
                labels = set(load_config(directory).label_names)
            except TLHubError:
                continue  # not a release, or a damaged one
            if labels == fits and (directory / "model.safetensors").is_file():
                found.append(directory)
    return max(found, key=lambda d: (d / "model.safetensors").stat().st_mtime, default=None)


def model_source(
    given: str | None, kind: str, roots: tuple[Path, ...], missing: str = ""
) -> str | Path | None:
    """The model of a tab: the one given (flag or environment), else the newest fitting release under
    `roots`; `missing` says what to do when there is neither."""
    if given:
        return given
    found = local_release(kind, roots)
    if found is None:
        logger.warning("%s tab: no model given and none under runs/: %s", kind, missing)
    else:
        logger.info("%s tab: no model given; serving the newest local release %s", kind, found)
    return found


def hub_link(source: str | None) -> str:
    """Markdown for where a model comes from: a link for a Hub repo id, the path for a local directory."""
    if source is None:
        return "a model passed in by the caller"
    if Path(source).expanduser().is_dir():
        return f"`{source}` (local directory)"
    return f"[{source}](https://huggingface.co/{source})"


def model_summary(predictor: Predictor, facts: Facts | None) -> str:
    """What the model is (config.json), what it was trained on and how well it scored (facts.json)."""
    config, p = predictor.config, predictor.preprocess
    view = f"{p.input_size}x{p.input_size} {'grayscale' if p.grayscale else 'RGB'}"
    if p.equalize != "none":
        view += f", {'CLAHE' if p.equalize == 'clahe' else 'histogram'}-equalized"
    lines = [
        f"**Model:** {hub_link(predictor.source)}: `{config.architecture}`, "
        f"{config.num_classes} classes, sees a {view} image.",
    ]
    if facts is None:
        lines.append("**Trained with** a release that records no training facts (facts.json).")
        return "\n\n".join(lines)
    lines.append(
        f"**Trained with** recipe `{facts.recipe.name}` on `{facts.dataset}`, strategy `{facts.strategy}` "
        f"from {facts.start.describe()} ({facts.counts.get('train', '?')} training images)."
    )
    if (m := facts.headline()) is not None:
        lines.append(
            f"**{m.split.capitalize()} accuracy:** {m.accuracy:.1%} on {m.num_samples} images of "
            f"`{m.dataset}` (macro-F1 {m.macro_f1:.3f}, top-5 {m.top5_accuracy:.1%})."
        )
    return "\n\n".join(lines)


def render_sign_examples(directory: Path) -> list[str]:
    """Real-looking signs from tl_hub's synthetic generator, saved as PNGs for gr.Examples."""
    import numpy as np

    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
    from tl_hub.data.synthetic import render_sign

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for class_id, seed in EXAMPLE_SIGNS:
        name = GTSRB_CLASS_NAMES[class_id].lower().replace(" ", "_").replace("(", "").replace(")", "")
        path = directory / f"{class_id:02d}_{name.replace('/', '_')}.png"
        render_sign(class_id, np.random.default_rng([seed, class_id]), EXAMPLE_SIZE).save(path)
        paths.append(str(path))
    return paths


def dataset_examples(source: str | Path | None, directory: Path, n: int = EXAMPLE_PHOTOS) -> list[str]:
    """A few photos from the Hub dataset the model `source` was trained on (its facts.json says which),
    fetched once into `directory` and reused after; none, quietly, offline or for a model trained on local
    data."""
    try:
        facts = load_facts(source) if source is not None else None
    except TLHubError:
        return []
    if facts is None or facts.dataset_hub_id is None:
        return []
    dataset = facts.dataset_hub_id
    target = directory / dataset.replace("/", "--")
    if cached := sorted(str(p) for p in target.glob("*.jpg")):
        return cached
    try:
        return _download_examples(dataset, target, n)
    except Exception as e:  # offline, no parquet file, another layout: the tab just has no examples
        logger.info("no example photos from %s (%s)", dataset, str(e).splitlines()[0] if str(e) else e)
        return []


def _download_examples(dataset: str, target: Path, n: int) -> list[str]:
    """`n` photos spread over the first rows of the dataset's smallest test (else validation, else any)
    parquet file, saved as JPEGs; the folder appears whole or not at all."""
    import numpy as np
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi, constants, hf_hub_download

    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("HF_HUB_OFFLINE is set")
    tree = HfApi().list_repo_tree(dataset, repo_type="dataset", recursive=True)
    files = [f for f in tree if f.path.endswith(".parquet")]
    if not files:
        raise RuntimeError("no parquet file")

    def preference(f: Any) -> tuple[int, int]:
        split = next((i for i, word in enumerate(("test", "valid")) if word in f.path), 2)
        return split, f.size or 0

    table = pq.ParquetFile(hf_hub_download(dataset, min(files, key=preference).path, repo_type="dataset"))
    rows = table.read_row_group(0)
    column = next(c for c in rows.column_names if "bytes" in str(rows.schema.field(c).type))
    images = rows.column(column).to_pylist()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".examples-", dir=target.parent))
    for i, index in enumerate(np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int)):
        image = read_image(images[index]["bytes"], max_pixels=MAX_PIXELS).convert("RGB")
        image.thumbnail((512, 512))
        image.save(tmp / f"{i}.jpg", quality=90)
    tmp.replace(target)
    logger.info("example photos: %d from %s", min(n, len(images)), dataset)
    return sorted(str(p) for p in target.glob("*.jpg"))


def port_number(text: str) -> int:
    """--port: a TCP port, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: expected 1 to 65535")
    return port


def port_problem(host: str | None, port: int) -> str | None:
    """Why the app could not listen on (host, port), or None: checked before anything loads, so that a port
    in use is one line and exit code 2, not gradio's traceback after the models have started loading."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or "127.0.0.1", port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            s.bind(address)
    except OSError as e:
        reason = e.strerror or str(e)
        return f"cannot listen on {host or '127.0.0.1'}:{port} ({reason}): choose another --port or --host"
    return None
