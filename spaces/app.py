"""tl_hub's Gradio Space: classify traffic signs and cats & dogs in the browser.

    python spaces/app.py --signs-model REPO_OR_DIR --pets-model REPO_OR_DIR --port 7860

Each tab wraps a `tl_hub.Predictor` loaded from a Hub repo id or a local release directory, lazily and once.
The preprocessing comes from the model's own config.json: nothing here re-describes it. Importing this file
builds nothing, loads nothing and touches no network; `build_demo(...)` makes the app, `main()` serves it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from tl_hub.cli import ArgumentParser, add_space_model_arguments
from tl_hub.config import cache_root
from tl_hub.errors import RequestRefused, TLHubError
from tl_hub.inference import serving
from tl_hub.inference.examples import tab_examples
from tl_hub.inference.predictor import Predictor
from tl_hub.inference.serving import (
    ModelSlot,
    heatmap,
    load_models,
    local_release,  # noqa: F401 - reached as app.local_release by its callers
    model_summary,  # noqa: F401 - reached as app.model_summary by its callers
    port_number,
    port_problem,
    read_upload,
)
from tl_hub.inference.space_server import SpaceBlocks, refusals, serve

# Where the models come from: --signs-model / --pets-model, else the environment variables
# TL_HUB_SIGNS_MODEL / TL_HUB_PETS_MODEL (the Space's variables, set by scripts/deploy_space.py), else
# the most accurate local release that fits the tab under runs/ (the repository's, or the working
# directory's), as `serving.choose_release` ranks them, logged with why.
RUNS_DIRS = (Path(__file__).resolve().parents[1] / "runs", Path("runs"))
# What a tab says, in the page and to API callers, when no model was named or found.
NO_MODEL = {
    "sign": "No traffic-sign model yet: train one with `python scripts/train.py --recipe cnn-synthetic` "
    "(the quickstart: under 2 minutes on 2 CPU cores), or start the app with `--signs-model REPO_OR_DIR`.",
    "pet": "No cats & dogs model yet: train one with `python scripts/train.py --model local-dir:PATH "
    "--dataset PHOTOS` (or `--recipe vgg16-catsdogs`), or start the app with `--pets-model REPO_OR_DIR`.",
}

TOP_K = 5
# Requests computed at once per tab (its classify, explain and page events together). VGG16 already keeps
# every core busy with one image, so its requests run one at a time; LeNet-5's take a few ms each.
CONCURRENCY = {"sign": 2, "pet": 1}
QUEUE_SIZE = 64  # requests waiting beyond that are told the app is busy


def model_source(given: str | None, kind: str) -> str | Path | None:
    """The model of a tab: the one given (flag or environment), else the most accurate fitting release
    under RUNS_DIRS."""
    return serving.model_source(given, kind, RUNS_DIRS, NO_MODEL[kind])


def classify(slot: ModelSlot, image: Any, top_k: int = TOP_K) -> dict[str, float]:
    """Top-k {label: probability} for one uploaded image; a friendly gr.Error for anything unreadable."""
    with refusals():
        return slot.get()(read_upload(image), top_k)


def explain(slot: ModelSlot, image: Any) -> Image.Image | None:
    """Grad-CAM of the top-1 class for one uploaded image (`serving.heatmap`: None for a model it cannot
    explain); a friendly gr.Error for anything unreadable."""
    with refusals():
        return heatmap(slot.get(), read_upload(image))


@dataclass(frozen=True)
class Tab:
    title: str
    endpoint: str  # the API name: /classify_<endpoint> and /explain_<endpoint>
    intro: str
    image_label: str
    examples: list[str] | None
    examples_label: str = "Examples"


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
        with refusals():
            image, predictor = read_upload(value), slot.get()
        return predictor(image, top_k), heatmap(predictor, image)

    # Named endpoints for gradio_client users: /classify_<name> (top-k labels) and /explain_<name> (Grad-CAM).
    # preprocess=False: the functions get the upload unopened (see `serving.uploaded_file`).
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
    hub_cache: Path | None = None,
) -> gr.Blocks:
    """The two-tab app around a traffic-sign and a cats & dogs model (repo ids, directories or Predictors).

    Nothing loads here: each model loads on its tab's first request (pass Predictors to load them yourself).
    A tab without a model (None) says how to get one, and the other tab works as ever. Each tab's examples
    are `examples.tab_examples`, copied into `examples_dir`; only with `hub_cache` are they fetched from the
    Hub (a Hub model's own, or the pets model's Hub dataset).
    """
    signs_slot = signs if isinstance(signs, ModelSlot) else ModelSlot(signs, missing=NO_MODEL["sign"])
    pets_slot = pets if isinstance(pets, ModelSlot) else ModelSlot(pets, missing=NO_MODEL["pet"])
    examples_dir = Path(examples_dir or tempfile.mkdtemp(prefix="tl_hub_space_"))
    signs_examples = tab_examples("sign", signs_slot.source, examples_dir, hub_cache)
    pets_examples = tab_examples("pet", pets_slot.source, examples_dir, hub_cache)
    tabs = [
        (
            Tab(
                "Traffic signs",
                "sign",
                "Traffic signs of the German Traffic Sign Recognition Benchmark's 43 classes: upload a photo "
                "cropped tightly around one sign.",
                "Traffic sign photo",
                *signs_examples,
            ),
            signs_slot,
        ),
        (
            Tab(
                "Cats & dogs",
                "pet",
                "Cats vs. dogs, a model trained by transfer learning: upload a photo of one animal.",
                "Cat or dog photo",
                *pets_examples,
            ),
            pets_slot,
        ),
    ]
    with SpaceBlocks(title="tl_hub: transfer learning demo") as demo:
        gr.Markdown(
            "# tl_hub: traffic signs and cats & dogs\n"
            "Image classifiers trained by transfer learning with tl_hub. "
            "The heatmap shows where the network found evidence for its top class (Grad-CAM)."
        )
        for tab, slot in tabs:
            _tab(demo, tab, slot, top_k)
    return demo.queue(max_size=QUEUE_SIZE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description="Serve tl_hub's traffic-sign and cats & dogs classifiers.")
    add_space_model_arguments(p)
    p.add_argument("--host", default=None, help="address to listen on (default: gradio's, 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=None, help="port (default: gradio's, 7860)")
    p.add_argument(
        "--no-compile", action="store_true", help="run the pets model eagerly instead of with torch.compile"
    )
    p.add_argument("--preload", action="store_true", help="load both models before serving")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.port is not None and (problem := port_problem(args.host, args.port)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signs = ModelSlot(model_source(args.signs_model, "sign"), missing=NO_MODEL["sign"])
    pets = ModelSlot(
        model_source(args.pets_model, "pet"), compile=not args.no_compile, missing=NO_MODEL["pet"]
    )
    demo = build_demo(signs, pets, hub_cache=cache_root() / "examples")
    if args.preload:
        try:
            load_models([signs, pets], strict=True)
        except RequestRefused as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    else:  # serve at once; load (and compile) in the background so the first visitor rarely waits
        threading.Thread(target=load_models, args=([signs, pets],), daemon=True).start()
    try:
        serve(demo, args.host, args.port)
    except TLHubError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
