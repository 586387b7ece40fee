"""What the Space serves, without the page: each tab's model, what the page says about it, and what a
request may send (the tabs' example images: `tl_hub.inference.examples`).

Each tab's model (`ModelSlot`: loaded once, on first use), found as the most accurate fitting release
under `runs/` when none is named (`choose_release`); the model summary (from config.json and facts.json);
uploads and inline `data:` URLs checked and decoded (`read_upload`); the port checks made before serving.
What a request cannot get is a `RequestRefused`, whose message is the caller's.
`spaces/app.py` builds the page and its events around these; nothing here imports gradio.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import socket
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from tl_hub.data.images import read_image
from tl_hub.data.naming import SYNTHETIC
from tl_hub.errors import RequestRefused, TLHubError
from tl_hub.inference.predictor import Predictor
from tl_hub.release.facts import Facts, Result, load_facts

logger = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # 40 megapixels: any phone photo, but no decompression bomb
# Files larger than this are refused, by whatever path they come: an upload (checked by gradio before it
# reaches the model) or an inline base64 `data:` URL in a raw API call (checked here before decoding).
MAX_FILE_BYTES = 15 * 2**20


class ModelSlot:
    """One tab's model: loaded on first use, once however many requests arrive together, then kept.

    A load that fails (Hub unreachable, wrong repo id) is not remembered: the next request tries again.
    No model, or one that does not load, is a `RequestRefused` saying so.
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
            raise RequestRefused(self.missing or "No model was given for this tab.")
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    logger.info("loading %s", self.source)
                    try:
                        predictor = Predictor.from_pretrained(self.source, compile=self.compile)
                        predictor.warmup()  # compiles now, not during someone's request
                    except TLHubError as e:
                        raise RequestRefused(f"The model {self.source} could not be loaded: {e}") from None
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
        """What the tab serves, or why it serves nothing (the other tab is not affected)."""
        if self.empty:
            return f"**{self.missing}**"
        try:
            predictor = self.get()
        except RequestRefused as e:
            return f"**{e}**"
        try:
            return model_summary(predictor, self.facts)
        except (TypeError, ValueError, AttributeError) as e:  # facts.json of the wrong types
            logger.warning("%s: facts.json does not read as facts (%s): summary without them", self.source, e)
            return model_summary(predictor, None)


TAB_WORDS = {"sign": "signs", "pet": "pets"}


def release_task(label_names: list[str]) -> str | None:
    """The tab a release serves, read from its label names (config.json): "sign" for GTSRB's 43 classes,
    "pet" for cat and dog (in any case, singular or plural), None for anything else."""
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES

    names = [str(name).strip().lower() for name in label_names]
    if sorted(names) == sorted(name.lower() for name in GTSRB_CLASS_NAMES):
        return "sign"
    if sorted(name.removesuffix("s") for name in names) == ["cat", "dog"]:
        return "pet"
    return None


def counted_result(facts: Facts | None) -> tuple[Result | None, bool]:
    """The result a release is ranked by, and whether it is on rendered data.

    Results on real data count before results on tl_hub's rendered signs: a model trained on renders
    scores about 100% on rendered validation images, which says nothing of real signs. A result is on
    rendered data when its dataset is named `synthetic` (`tl_hub.data.naming.SYNTHETIC`, the name every run
    and every `scripts/evaluate.py --update-card` on `--dataset synthetic` records); any other dataset is
    real photos. Within each kind: the newest test result, else validation, else any other split (such as
    a rendered-only model scored on real GTSRB training images).
    """
    if facts is None:
        return None, False
    for rendered in (False, True):
        pool = [r for r in facts.results if (r.dataset == SYNTHETIC) == rendered]
        if pool:
            for split in ("test", "validation"):
                if found := [r for r in pool if r.split == split]:
                    return found[-1], rendered
            return pool[-1], rendered
    return None, False


@dataclass(frozen=True)
class Candidate:
    """A release under runs/ that fits a tab, with what it is ranked by."""

    directory: Path
    architecture: str
    result: Result | None
    rendered: bool  # `result` is on rendered signs
    mtime: float  # of its weights: the newest wins ties

    def rank(self) -> tuple[bool, bool, float, float]:
        """Higher is better: a result at all, then one on real data, then its accuracy, then newer."""
        has = self.result is not None
        return has, has and not self.rendered, self.result.accuracy if has else 0.0, self.mtime

    def described(self) -> str:
        """'vgg16, 0.986 validation accuracy on catsdogs-train-2000'."""
        if self.result is None:
            return f"{self.architecture}, no recorded result"
        r = self.result
        kind = " (rendered signs)" if self.rendered else ""
        return f"{self.architecture}, {r.accuracy:.3f} {r.split} accuracy on {r.dataset}{kind}"


def release_candidates(kind: str, roots: tuple[Path, ...]) -> list[Candidate]:
    """Every release `runs/*/model` under `roots` whose labels fit the tab `kind` (`release_task`)."""
    from tl_hub.release.load import load_config

    found = []
    for root in dict.fromkeys(r.resolve() for r in roots):
        for directory in sorted(root.glob("*/model")):
            weights = directory / "model.safetensors"
            try:
                config = load_config(directory)
            except TLHubError:
                continue  # not a release, or a damaged one
            if release_task(config.label_names) != kind or not weights.is_file():
                continue
            try:
                facts = load_facts(directory)
            except TLHubError as e:  # an unreadable facts.json: served only if nothing else fits
                logger.warning("%s", e)
                facts = None
            result, rendered = counted_result(facts)
            found.append(Candidate(directory, config.architecture, result, rendered, weights.stat().st_mtime))
    return found


def choose_release(kind: str, roots: tuple[Path, ...]) -> tuple[Path, str] | None:
    """The release a tab serves when none is named, and why, in words for the log; None when none fits.

    One rule for both tabs: the most accurate release by the result in its facts.json (`counted_result`:
    real data before rendered signs), the newest on a tie; a release with no result ranks last.
    """
    candidates = release_candidates(kind, roots)
    if not candidates:
        return None
    best = max(candidates, key=Candidate.rank)
    n, tab = len(candidates), TAB_WORDS[kind]
    if n == 1:
        why = f"the only {tab} release"
    elif best.result is None:
        why = f"the newest of {n} {tab} releases, none with a recorded result"
    else:
        tied = [c for c in candidates if c.rank()[:3] == best.rank()[:3]]
        real = not best.rendered and any(c.rendered for c in candidates)
        on = " on real data" if real else ""
        why = f"the most accurate{on} of {n} {tab} releases" + (
            f", the newest of {len(tied)} tied" if len(tied) > 1 else ""
        )
    return best.directory, f"{shown_path(best.directory)} ({best.described()}; {why})"


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (as the log shows it)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def local_release(kind: str, roots: tuple[Path, ...]) -> Path | None:
    """The release under `roots` the tab `kind` serves when none is named (`choose_release`)."""
    chosen = choose_release(kind, roots)
    return chosen[0] if chosen else None


def model_source(
    given: str | None, kind: str, roots: tuple[Path, ...], missing: str = ""
) -> str | Path | None:
    """The model of a tab: the one given (flag or environment), else the release `choose_release` picks
    under `roots`, logged in one line with why; `missing` says what to do when there is neither."""
    tab = TAB_WORDS[kind]
    if given:
        logger.info("%s tab: %s (given)", tab, given)
        return given
    chosen = choose_release(kind, roots)
    if chosen is None:
        logger.warning("%s tab: no model given and none under runs/: %s", tab, missing)
        return None
    logger.info("%s tab: %s", tab, chosen[1])
    return chosen[0]


def hub_link(source: str | None) -> str:
    """Markdown for where a model comes from: a link for a Hub repo id, the path for a local directory."""
    if source is None:
        return "a model passed in by the caller"
    if Path(source).expanduser().is_dir():
        return f"`{source}` (local directory)"
    return f"[{source}](https://huggingface.co/{source})"


def model_summary(predictor: Predictor, facts: Facts | None) -> str:
    """What the model is (config.json), what it was trained on and how well it scored (facts.json: the
    result `counted_result` ranks it by, so a model trained on rendered signs shows its figure on real ones
    when it has one)."""
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
    m, rendered = counted_result(facts)  # the figure the tab was chosen by: real images first
    if m is not None:
        what = " (tl_hub's rendered signs)" if rendered else ""
        lines.append(
            f"**{m.split.capitalize()} accuracy:** {m.accuracy:.1%} on {m.num_samples} images of "
            f"`{m.dataset}`{what} (macro-F1 {m.macro_f1:.3f}, top-5 {m.top5_accuracy:.1%})."
        )
    return "\n\n".join(lines)


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


def uploaded_file(payload: Any) -> str | bytes | None:
    """The uploaded file behind an image payload, unopened (the Space's events run with `preprocess=False`).

    gr.Image's own preprocessing would open uploads with PIL and fail with a generic error on a non-image,
    an empty file or a decompression bomb: tl_hub's `read_image` decodes them instead, with a pixel limit
    and a message that says what is wrong. Gradio has already checked that a file's path is one of its
    uploads; an inline `data:` URL is held to the same size limit as an upload before it is decoded.
    """
    if payload is None or isinstance(payload, str):  # a path: from Python callers, or an example
        return payload
    if not isinstance(payload, dict):
        raise RequestRefused(
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
            raise RequestRefused(
                f"The image is {size / 2**20:.0f} MB, over this app's limit of {MAX_FILE_BYTES // 2**20} MB: "
                "send a smaller file."
            )
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            raise RequestRefused("The data: URL does not hold valid base64: send the file itself.") from None
    if payload.get("url") is not None:
        raise RequestRefused("This app reads uploaded files only, not URLs: upload the image itself.")
    return None


def read_upload(payload: Any) -> Image.Image:
    """The image behind an upload's payload (`uploaded_file`), decoded by `read_image` within `MAX_PIXELS`;
    anything unreadable is a `RequestRefused` whose message is the caller's, as a sentence."""
    try:
        return read_image(uploaded_file(payload), max_pixels=MAX_PIXELS)
    except RequestRefused:
        raise
    except TLHubError as e:
        raise RequestRefused(str(e)[0].upper() + str(e)[1:] + ".") from None


def heatmap(predictor: Predictor, image: Image.Image) -> Image.Image | None:
    """Grad-CAM of the top-1 class over the region of the image the model saw (None for a model it cannot
    explain, such as a vision transformer that reads its class token only)."""
    try:
        return predictor.explain(image)
    except TLHubError as e:
        logger.info("no heatmap: %s", e)
        return None


def load_models(slots: list[ModelSlot], strict: bool = False) -> None:
    """Load each slot's model now (a tab without one says how to get one). A model that does not load is a
    warning, or with `strict` the `RequestRefused` that stops the start."""
    for slot in slots:
        if slot.empty:
            continue
        try:
            slot.get()
        except RequestRefused as e:
            if strict:
                raise
            logger.warning("%s", e)
