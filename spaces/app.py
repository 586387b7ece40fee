"""tl_hub's Gradio Space: classify traffic signs and cats & dogs in the browser.

    python spaces/app.py --signs-model REPO_OR_DIR --pets-model REPO_OR_DIR --port 7860

Each tab wraps a `tl_hub.Predictor` loaded from a Hub repo id or a local release directory, lazily and once.
The preprocessing comes from the model's own config.json: nothing here re-describes it. Importing this file
builds nothing, loads nothing and touches no network; `build_demo(...)` makes the app, `main()` serves it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from tl_hub.config import cache_root
from tl_hub.data.transforms import read_image
from tl_hub.errors import TLHubError
from tl_hub.inference.predictor import Predictor
from tl_hub.release.facts import Facts, load_facts
from tl_hub.release.space import PETS_MODEL_ENV, SIGNS_MODEL_ENV

logger = logging.getLogger("spaces.app")

# Where the models come from: --signs-model / --pets-model, else the environment variables
# TL_HUB_SIGNS_MODEL / TL_HUB_PETS_MODEL (the Space's variables, set by scripts/deploy_space.py), else
# the newest local release that fits the tab under runs/ (the repository's, or the working directory's).
RUNS_DIRS = (Path(__file__).resolve().parents[1] / "runs", Path("runs"))
# What a tab says, in the page and to API callers, when no model was named or found.
NO_MODEL = {
    "sign": "No traffic-sign model yet: train one with `python scripts/train.py --recipe cnn-synthetic` "
    "(the quickstart: under 2 minutes on 2 CPU cores), or start the app with `--signs-model REPO_OR_DIR`.",
    "pet": "No cats & dogs model yet: train one with `python scripts/train.py --model local-dir:PATH "
    "--dataset PHOTOS` (or `--recipe vgg16-catsdogs`), or start the app with `--pets-model REPO_OR_DIR`.",
}

TOP_K = 5
MAX_PIXELS = 40_000_000  # 40 megapixels: any phone photo, but no decompression bomb
# Files larger than this are refused, by whatever path they come: an upload (checked by gradio before it
# reaches the model) or an inline base64 `data:` URL in a raw API call (checked here before decoding).
MAX_FILE_BYTES = 15 * 2**20
# Requests computed at once per tab (its classify, explain and page events together). VGG16 already keeps
# every core busy with one image, so its requests run one at a time; LeNet-5's take a few ms each.
CONCURRENCY = {"sign": 2, "pet": 1}
QUEUE_SIZE = 64  # requests waiting beyond that are told the app is busy

# Photos for the pets tab: a few from the Hub dataset its model was trained on, fetched once and cached.
EXAMPLE_PHOTOS = 6

# Signs rendered by tl_hub's synthetic generator as examples: (GTSRB class id, seed).
EXAMPLE_SIGNS = [(c, 2026) for c in (14, 13, 2, 12, 17, 28, 38, 40)]
EXAMPLE_SIZE = 128


class ModelSlot:
    """One tab's model: loaded on first use, once however many requests arrive together, then kept.

    A load that fails (Hub unreachable, wrong repo id) is not remembered: the next request tries again.
    """

    def __init__(self, source: str | Path | Predictor | None, compile: bool = False, missing: str = ""):
        self._predictor = source if isinstance(source, Predictor) else None
        self.source: str | None = source.source if isinstance(source, Predictor) else source and str(source)
        self.compile = compile
        self.missing = missing  # what to say when there is no model (source None)
        self._lock = threading.Lock()

    @property
    def empty(self) -> bool:
        """No model was given or found for this tab."""
        return self._predictor is None and self.source is None

    def get(self) -> Predictor:
        if self.empty:
            raise refusal(self.missing or "No model was given for this tab.")
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    logger.info("loading %s", self.source)
                    try:
                        predictor = Predictor.from_pretrained(self.source, compile=self.compile)
                        predictor.warmup()  # compiles now, not during someone's request
                    except TLHubError as e:
                        raise refusal(f"The model {self.source} could not be loaded: {e}") from None
                    self._predictor = predictor
        return self._predictor

    @cached_property
    def facts(self) -> Facts | None:
        """The model's facts.json (start weights, data, headline figures), fetched once."""
        if self.source is None:
            return None
        try:
            return load_facts(self.source)
        except TLHubError as e:
            logger.warning("%s: %s", self.source, e)
            return None

    def summary(self) -> str:
        if self.empty:
            return f"**{self.missing}**"
        return model_summary(self.get(), self.facts)


def local_release(kind: str, roots: tuple[Path, ...] | None = None) -> Path | None:
    """The newest release `runs/*/model` whose labels fit the tab: GTSRB's 43 signs, or cat and dog."""
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
    from tl_hub.release.load import load_config

    fits = {"sign": set(GTSRB_CLASS_NAMES), "pet": {"cat", "dog"}}[kind]
    found = []
    for root in dict.fromkeys(r.resolve() for r in roots or RUNS_DIRS):
        for directory in root.glob("*/model"):
            try:
                labels = set(load_config(directory).label_names)
            except TLHubError:
                continue  # not a release, or a damaged one
            if labels == fits and (directory / "model.safetensors").is_file():
                found.append(directory)
    return max(found, key=lambda d: (d / "model.safetensors").stat().st_mtime, default=None)


def model_source(given: str | None, kind: str) -> str | Path | None:
    """The model of a tab: the one given (flag or environment), else the newest fitting local release."""
    if given:
        return given
    found = local_release(kind)
    if found is None:
        logger.warning("%s tab: no model given and none under runs/: %s", kind, NO_MODEL[kind])
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


def refusal(message: str) -> gr.Error:
    """The error a request gets for a user's mistake: its message goes to the caller, one line to the log
    (gradio would print a traceback for each)."""
    logger.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


def upload(payload: Any) -> str | bytes | None:
    """The uploaded file behind an image payload, unopened (the events run with `preprocess=False`).

    gr.Image's own preprocessing would open uploads with PIL and fail with a generic error on a non-image,
    an empty file or a decompression bomb: tl_hub's `read_image` decodes them instead, with a pixel limit
    and a message that says what is wrong. Gradio has already checked that a file's path is one of its
    uploads; an inline `data:` URL is held to the same size limit as an upload before it is decoded.
    """
    if payload is None or isinstance(payload, str):  # a path: from Python callers, or an example
        return payload
    if not isinstance(payload, dict):
        raise refusal(
            f"Expected an image file, got a {type(payload).__name__}: send one with "
            "gradio_client.handle_file(PATH_OR_URL)."
        )
    if isinstance(payload.get("path"), str) and payload["path"]:
        return payload["path"]
    url = payload.get("url")
    if isinstance(url, str) and url.startswith("data:"):  # an inline base64 image
        data = url.partition(",")[2]
        size = len(data) * 3 // 4
        if size > MAX_FILE_BYTES:
            raise refusal(
                f"The image is {size / 2**20:.0f} MB, over this app's limit of {MAX_FILE_BYTES // 2**20} MB: "
                "send a smaller file."
            )
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            raise refusal("The data: URL does not hold valid base64: send the file itself.") from None
    if payload.get("url") is not None:
        raise refusal("This app reads uploaded files only, not URLs: upload the image itself.")
    return None


def _image(value: Any) -> Image.Image:
    try:
        return read_image(upload(value), max_pixels=MAX_PIXELS)
    except TLHubError as e:
        raise refusal(str(e)[0].upper() + str(e)[1:] + ".") from None


def classify(slot: ModelSlot, image: Any, top_k: int = TOP_K) -> dict[str, float]:
    """Top-k {label: probability} for one uploaded image; a friendly gr.Error for anything unreadable."""
    return slot.get()(_image(image), top_k)


def explain(slot: ModelSlot, image: Any) -> Image.Image | None:
    """Grad-CAM of the top-1 class over the region of the image the model saw (None for a model it cannot
    explain, such as a vision transformer that reads its class token only)."""
    return _heatmap(slot.get(), _image(image))


def _heatmap(predictor: Predictor, image: Image.Image) -> Image.Image | None:
    try:
        return predictor.explain(image)
    except TLHubError as e:
        logger.info("no heatmap: %s", e)
        return None


@dataclass(frozen=True)
class Tab:
    title: str
    endpoint: str  # the API name: /classify_<endpoint> and /explain_<endpoint>
    intro: str
    image_label: str
    examples: list[str] | None
    examples_label: str = "Examples"


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


def _tab(demo: gr.Blocks, tab: Tab, slot: ModelSlot, top_k: int) -> None:
    with gr.Tab(tab.title):
        gr.Markdown(tab.intro)
        summary = gr.Markdown("*Loading the model...*")  # what the model is, from its config.json
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label=tab.image_label,
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    height=320,
                )
                button = gr.Button("Classify", variant="primary")
                if tab.examples:
                    gr.Examples(tab.examples, inputs=image, label=tab.examples_label)
                else:
                    gr.Markdown("*No example photos for this model: upload your own.*")
            with gr.Column():
                label = gr.Label(num_top_classes=top_k, label="Prediction")
                cam = gr.Image(label="Where the network looked (Grad-CAM)", type="pil", interactive=False)

    def run_classify(value: Any) -> dict[str, float]:
        return classify(slot, value, top_k)

    def run_explain(value: Any) -> Image.Image | None:
        return explain(slot, value)

    def run_both(value: Any) -> tuple[Any, Any]:
        """The page's own trigger: a cleared image clears the outputs instead of raising an error; the
        upload is decoded once for both outputs."""
        if value is None:
            return None, None
        image, predictor = _image(value), slot.get()
        return predictor(image, top_k), _heatmap(predictor, image)

    # Named endpoints for gradio_client users: /classify_<name> (top-k labels) and /explain_<name> (Grad-CAM).
    # preprocess=False: the functions get the upload unopened (see `upload`).
    queue = {"concurrency_id": tab.endpoint, "concurrency_limit": CONCURRENCY.get(tab.endpoint, 1)}
    button.click(
        run_classify, image, label, api_name=f"classify_{tab.endpoint}", preprocess=False, **queue
    ).then(run_explain, image, cam, api_name=f"explain_{tab.endpoint}", preprocess=False, **queue)
    image.change(run_both, image, [label, cam], api_visibility="private", preprocess=False, **queue)
    demo.load(slot.summary, None, summary, api_visibility="private", **queue)  # loads the model if need be


def build_demo(
    signs: str | Path | Predictor | ModelSlot | None,
    pets: str | Path | Predictor | ModelSlot | None,
    top_k: int = TOP_K,
    examples_dir: str | Path | None = None,
    pet_examples: list[str] | None = None,
) -> gr.Blocks:
    """The two-tab app around a traffic-sign and a cats & dogs model (repo ids, directories or Predictors).

    Nothing loads here: each model loads on its tab's first request (pass Predictors to load them yourself).
    A tab without a model (None) says how to get one, and the other tab works as ever.
    """
    signs_slot = signs if isinstance(signs, ModelSlot) else ModelSlot(signs, missing=NO_MODEL["sign"])
    pets_slot = pets if isinstance(pets, ModelSlot) else ModelSlot(pets, missing=NO_MODEL["pet"])
    examples_dir = Path(examples_dir or tempfile.mkdtemp(prefix="tl_hub_space_"))
    tabs = [
        (
            Tab(
                "Traffic signs",
                "sign",
                "Traffic signs of the German Traffic Sign Recognition Benchmark's 43 classes: upload a photo "
                "cropped tightly around one sign.",
                "Traffic sign photo",
                render_sign_examples(examples_dir / "signs"),
                "Examples (rendered by tl_hub)",
            ),
            signs_slot,
        ),
        (
            Tab(
                "Cats & dogs",
                "pet",
                "Cats vs. dogs, a model trained by transfer learning: upload a photo of one animal.",
                "Cat or dog photo",
                pet_examples or None,
                "Examples (from the model's training dataset)",
            ),
            pets_slot,
        ),
    ]
    with gr.Blocks(title="tl_hub: transfer learning demo") as demo:
        gr.Markdown(
            "# tl_hub: traffic signs and cats & dogs\n"
            "Image classifiers trained by transfer learning with tl_hub. "
            "The heatmap shows where the network found evidence for its top class (Grad-CAM)."
        )
        for tab, slot in tabs:
            _tab(demo, tab, slot, top_k)
    return demo.queue(max_size=QUEUE_SIZE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve tl_hub's traffic-sign and cats & dogs classifiers.")
    p.add_argument(
        "--signs-model",
        default=os.environ.get(SIGNS_MODEL_ENV),
        help=f"Hub repo id or release directory (default: ${SIGNS_MODEL_ENV}, else the newest fitting "
        "runs/*/model)",
    )
    p.add_argument(
        "--pets-model",
        default=os.environ.get(PETS_MODEL_ENV),
        help=f"Hub repo id or release directory (default: ${PETS_MODEL_ENV}, else the newest fitting "
        "runs/*/model)",
    )
    p.add_argument("--host", default=None, help="address to listen on (default: gradio's, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: gradio's, 7860)")
    p.add_argument(
        "--no-compile", action="store_true", help="run the pets model eagerly instead of with torch.compile"
    )
    p.add_argument("--preload", action="store_true", help="load both models before serving")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signs = ModelSlot(model_source(args.signs_model, "sign"), missing=NO_MODEL["sign"])
    pets = ModelSlot(
        model_source(args.pets_model, "pet"), compile=not args.no_compile, missing=NO_MODEL["pet"]
    )
    cache = cache_root() / "examples"
    demo = build_demo(signs, pets, pet_examples=dataset_examples(pets.source, cache))
    if args.preload:
        _load([signs, pets], strict=True)
    else:  # serve at once; load (and compile) in the background so the first visitor rarely waits
        threading.Thread(target=_load, args=([signs, pets],), daemon=True).start()
    serve(demo, args.host, args.port)


def _load(slots: list[ModelSlot], strict: bool = False) -> None:
    for slot in slots:
        if slot.empty:
            continue  # the tab says how to get a model
        try:
            slot.get()
        except gr.Error as e:
            if strict:
                raise SystemExit(f"error: {e.message}") from None
            logger.warning("%s", e.message)


def serve(demo: gr.Blocks, host: str | None = None, port: int | None = None, block: bool = True) -> str:
    """Serve `demo` (gradio's host and port unless given) with the upload size limit; returns its URL.

    `block=False` returns once the server is up, for tests and benchmarks; `demo.close()` stops it.
    """
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_FILE_BYTES,
        show_error=True,  # an error's message reaches API callers too, not only the page
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return url


if __name__ == "__main__":
    main()
