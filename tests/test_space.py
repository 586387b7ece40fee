"""The Gradio Space: served on 127.0.0.1 with small local models, called by gradio_client and a browser."""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from PIL import Image

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.synthetic import render_sign
from tl_hub.inference.predictor import Predictor
from tl_hub.models import create_model
from tl_hub.recipes import get_recipe
from tl_hub.release.publish import PushTarget, push_to_hub

from .conftest import ROOT, run_entry_point, write_fake_release
from .hub_server import FakeHub, Repo

gradio_client = pytest.importorskip("gradio_client")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI sets this: there the browser test must run, not skip.
REQUIRE_BROWSER = os.environ.get("TL_HUB_REQUIRE_BROWSER") == "1"


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tl_hub_space_app", ROOT / "spaces" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app() -> ModuleType:
    return load_app()


@pytest.fixture(scope="module")
def pets_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained vgg16-catsdogs release at 32x32 (the head's input follows the image size)."""
    recipe = get_recipe("vgg16-catsdogs").config
    run = dataclasses.replace(
        recipe,
        preprocess=dataclasses.replace(recipe.preprocess, input_size=32),
        model=dataclasses.replace(recipe.model, pretrained=None),
    )
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    return write_fake_release(tmp_path_factory.mktemp("pets") / "model", model, run, ["cat", "dog"])


@pytest.fixture(scope="module")
def predictors(release: Path, pets_release: Path) -> dict[str, Predictor]:
    return {"sign": Predictor.from_pretrained(release), "pet": Predictor.from_pretrained(pets_release)}


@pytest.fixture(scope="module")
def served(app: ModuleType, predictors: dict[str, Predictor], tmp_path_factory: pytest.TempPathFactory):
    """The app on 127.0.0.1 around the two small models: (its URL, a gradio_client Client)."""
    demo = app.build_demo(predictors["sign"], predictors["pet"], examples_dir=tmp_path_factory.mktemp("ex"))
    url = app.serve(demo, "127.0.0.1", block=False)
    try:
        yield url, gradio_client.Client(url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def sign_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "stop.png"
    render_sign(14, np.random.default_rng(5), 64).save(path)
    return path


def upload(path: Path):
    return gradio_client.handle_file(str(path))


def test_no_model_yet_names_the_quickstart_command(app: ModuleType) -> None:
    assert "`python scripts/train.py --recipe cnn-synthetic`" in app.NO_MODEL["sign"]
    readme = (ROOT / "README.md").read_text()
    assert "python scripts/train.py --recipe cnn-synthetic" in readme  # the README's quickstart, the same


@pytest.mark.slow
def test_importing_the_app_loads_no_model_and_opens_no_connection() -> None:
    code = textwrap.dedent(
        f"""
        import socket, sys
        def refuse(*args, **kwargs):
            raise AssertionError("network access at import")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import importlib.util
        spec = importlib.util.spec_from_file_location("app", {str(ROOT / "spaces" / "app.py")!r})
        app = sys.modules["app"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        import gradio
        assert not hasattr(app, "demo"), "a module-level demo is built at import"
        heavy = [m for m in ("datasets", "accelerate", "tl_hub.release.writer") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_both_endpoints_answer_top_k_with_the_models_own_labels_and_probabilities(
    served, predictors: dict[str, Predictor], sign_file: Path
) -> None:
    _, client = served
    for name, labels in [("sign", list(GTSRB_CLASS_NAMES)), ("pet", ["cat", "dog"])]:
        result = client.predict(upload(sign_file), api_name=f"/classify_{name}")
        confidences = result["confidences"]
        assert len(confidences) == min(5, len(labels))
        assert [c["label"] for c in confidences if c["label"] not in labels] == []
        values = [c["confidence"] for c in confidences]
        assert values == sorted(values, reverse=True) and 0 < sum(values) <= 1 + 1e-6
        assert result["label"] == confidences[0]["label"]
        # The app's preprocessing is the evaluation preprocessing: the same image gives the same numbers.
        expected = predictors[name](Image.open(sign_file))
        assert [c["label"] for c in confidences] == list(expected)
        assert values == pytest.approx(list(expected.values()), abs=1e-6)


def test_explain_endpoint_returns_a_heatmap_over_the_image(served, sign_file: Path) -> None:
    _, client = served
    for name in ("sign", "pet"):
        path = client.predict(upload(sign_file), api_name=f"/explain_{name}")
        heatmap = Image.open(path)
        assert heatmap.size == (256, 256) and heatmap.mode == "RGB"


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_odd_but_valid_images_are_all_classified(
    served, photos: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    _, client = served
    odd = dict(photos[:-4])  # CMYK, grayscale, palette, RGBA, 16-bit, 1x1, animated GIF, EXIF-rotated
    rng = np.random.default_rng(1)
    odd["huge.jpg"] = encode(Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)), "JPEG")
    for name, data in odd.items():
        (tmp_path / name).write_bytes(data)
        result = client.predict(upload(tmp_path / name), api_name="/classify_pet")
        assert result["label"] in ("cat", "dog"), name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_an_image.jpg", "The file is not a readable image (UnidentifiedImageError)"),
        ("truncated.jpg", "The file is not a readable image"),
        ("empty.jpg", "The file is empty (0 bytes)"),
        ("bomb.png", "The image has 196 megapixels, too many to decode safely: downscale it"),
    ],
)
def test_bad_files_get_a_clear_error_and_the_next_request_is_served(
    served, photos: list[tuple[str, bytes]], sign_file: Path, tmp_path: Path, name: str, message: str
) -> None:
    _, client = served
    (tmp_path / name).write_bytes(dict(photos)[name])
    for endpoint in ("/classify_sign", "/explain_pet"):
        with pytest.raises(gradio_client.exceptions.AppError, match=re.escape(message)):
            client.predict(upload(tmp_path / name), api_name=endpoint)
    assert client.predict(upload(sign_file), api_name="/classify_sign")["label"] in GTSRB_CLASS_NAMES


def test_missing_image_and_oversized_images_are_refused(served, app: ModuleType, tmp_path: Path) -> None:
    _, client = served
    with pytest.raises(gradio_client.exceptions.AppError, match="No image was given: upload a photo"):
        client.predict(None, api_name="/classify_sign")
    # Under PIL's own bomb limit but over the app's: refused from the header, before decoding.
    wide = tmp_path / "wide.png"
    Image.new("1", (9000, 5000)).save(wide)
    with pytest.raises(
        gradio_client.exceptions.AppError, match="9000x5000 = 45 megapixels, over this app's limit"
    ):
        client.predict(upload(wide), api_name="/classify_pet")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(16 * 2**20))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client.predict(upload(big), api_name="/classify_sign")


def raw_call(url: str, endpoint: str, payload) -> tuple[str, dict | list | None]:
    """A raw API call, as any HTTP client can make one: (the final event's name, its data)."""
    import httpx

    started = httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": [payload]}, timeout=60)
    started.raise_for_status()
    stream = httpx.get(f"{url}gradio_api/call/{endpoint}/{started.json()['event_id']}", timeout=60).text
    event, data = re.findall(r"event: (\w+)\ndata: (.*)", stream)[-1]
    return event, json.loads(data)


def data_url(data: bytes) -> dict:
    return {
        "url": "data:image/png;base64," + base64.b64encode(data).decode(),
        "meta": {"_type": "gradio.FileData"},
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # 16 MB of base64 text is 12 MB of file: over the limit needs more
        (
            lambda: data_url(b"\x89PNG" + bytes(20 * 2**20)),
            "The image is 20 MB, over this app's limit of 15 MB",
        ),
        (
            lambda: {"url": "data:image/png;base64,@@@", "meta": {"_type": "gradio.FileData"}},
            "does not hold valid base64",
        ),
        (
            lambda: {"url": "http://127.0.0.1:1/x.png", "meta": {"_type": "gradio.FileData"}},
            "uploaded files only",
        ),
        (
            lambda: {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}},
            "Cannot move /etc/hostname to the gradio cache dir because it was not uploaded by a user",
        ),
        (lambda: "/etc/hostname", "Input should be a valid dictionary"),
        (lambda: 5, "Input should be a valid dictionary"),
        (
            lambda: [1, 2],
            "The request's input to /classify_sign is not an image file (Input should be a valid dictionary "
            "or instance of ImageData; given: list): send one with gradio_client.handle_file(PATH_OR_URL).",
        ),
        (lambda: True, "is not an image file (Input should be a valid dictionary"),
        (
            lambda: {"path": 5, "meta": {"_type": "gradio.FileData"}},
            "is not an image file (Input should be a valid string; given: int)",
        ),
        (lambda: {"url": ["x"], "meta": {"_type": "gradio.FileData"}}, "is not an image file"),
    ],
    ids=[
        "20 MB data URL",
        "bad base64",
        "remote URL",
        "server path",
        "bare path",
        "a number",
        "a list",
        "a bool",
        "a numeric path",
        "a list URL",
    ],
)
def test_the_raw_api_refuses_with_a_message_and_serves_the_next(served, payload, message: str) -> None:
    url, _ = served
    event, data = raw_call(url, "classify_sign", payload())
    assert event == "error" and message in data["error"]
    png = io.BytesIO()
    render_sign(14, np.random.default_rng(5), 64).save(png, "PNG")
    event, data = raw_call(url, "classify_sign", data_url(png.getvalue()))  # inline images within the limit
    assert event == "complete" and data[0]["label"] in GTSRB_CLASS_NAMES


def test_malformed_calls_get_one_line_and_no_server_traceback(served, sign_file: Path, capfd) -> None:
    import httpx

    url, client = served
    capfd.readouterr()
    for path in ("gradio_api/call/classify_dog", "gradio_api/run/nope", "gradio_api/api/predict"):
        answer = httpx.post(f"{url}{path}", json={"data": [None]}, timeout=60)
        assert answer.status_code == 404
        assert answer.json()["error"] == (
            f"The request names no endpoint of this app (/{path}): its endpoints are /classify_sign, "
            "/explain_sign, /classify_pet, /explain_pet."
        )
    answer = httpx.post(
        f"{url}gradio_api/queue/join", json={"fn_index": 999, "data": [], "session_hash": "x"}
    )
    assert answer.status_code == 404
    started = httpx.post(f"{url}gradio_api/call/classify_sign", json={"data": []}, timeout=60).json()
    stream = httpx.get(f"{url}gradio_api/call/classify_sign/{started['event_id']}", timeout=60).text
    assert "The request holds 0 input value(s); /classify_sign takes 1, an image file" in stream
    with pytest.raises(Exception, match="Cannot find a function with `api_name`: /classify_dog"):
        client.predict(upload(sign_file), api_name="/classify_dog")  # gradio_client's own check
    assert client.predict(upload(sign_file), api_name="/classify_sign")["label"] in GTSRB_CLASS_NAMES
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    """Checked before any model loads: gradio's OSError came after the loading had started, and the process
    aborted (exit -6)."""
    import socket

    env = {**os.environ, "TL_HUB_SIGNS_MODEL": str(tmp_path), "TL_HUB_PETS_MODEL": str(tmp_path)}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "spaces" / "app.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use): choose another --port or --host"
    ]
    for args, message in [
        (["--port", "70000"], "error: argument --port: 70000 is not a port number: expected 1 to 65535"),
        (["--port", "http"], "error: argument --port: 'http' is not a port number"),
        (
            ["--port", "8080", "--host", "no.such.host.invalid"],
            "error: cannot listen on no.such.host.invalid:8080",
        ),
    ]:
        code, _, err = run_entry_point(ROOT / "spaces" / "app.py", args, monkeypatch, capsys)
        assert code == 2 and err.strip().splitlines() == [err.strip()] and message in err


def test_a_port_taken_after_the_check_is_a_one_line_error(app: ModuleType) -> None:
    """Taken between port_problem's look and the launch: serve says so in one line (main exits with 2)."""
    import socket

    import gradio as gr

    from tl_hub.errors import TLHubError

    with gr.Blocks() as demo:
        gr.Markdown("a page")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(TLHubError, match=f"cannot serve on port {port} ") as error:
            app.serve(demo, "127.0.0.1", port, block=False)
    assert len(str(error.value).splitlines()) == 1


def test_a_user_error_logs_one_line_not_a_traceback(served, photos, tmp_path: Path, caplog, capfd) -> None:
    _, client = served
    (tmp_path / "empty.jpg").write_bytes(b"")
    refused = pytest.raises(gradio_client.exceptions.AppError, match="The file is empty")
    with caplog.at_level("INFO", logger="spaces.app"), refused:
        client.predict(upload(tmp_path / "empty.jpg"), api_name="/classify_sign")
    assert [r.getMessage() for r in caplog.records if r.name == "spaces.app"] == [
        "refused: The file is empty (0 bytes): upload a photo (JPEG, PNG, WebP, GIF, BMP or TIFF)."
    ]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow
def test_twenty_concurrent_clients_are_all_answered(
    served, predictors: dict[str, Predictor], tmp_path: Path
) -> None:
    url, _ = served
    files = []
    for i in range(20):
        path = tmp_path / f"sign{i}.png"
        render_sign(i % 43, np.random.default_rng(i), 48).save(path)
        files.append(path)

    def call(i: int) -> str:
        client = gradio_client.Client(url, verbose=False)
        endpoint = "/classify_sign" if i % 2 == 0 else "/classify_pet"
        return client.predict(upload(files[i]), api_name=endpoint)["label"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(call, range(20)))
    expected = [
        next(iter(predictors["sign" if i % 2 == 0 else "pet"](Image.open(files[i])))) for i in range(20)
    ]
    assert answers == expected


def test_model_summary_names_the_model_its_data_and_its_test_accuracy(
    app: ModuleType, predictors: dict[str, Predictor], release: Path
) -> None:
    slot = app.ModelSlot(predictors["sign"])
    text = slot.summary()
    assert f"`{release}` (local directory)" in text and "`lenet5`, 43 classes" in text
    assert "32x32 grayscale, CLAHE-equalized" in text
    assert "recipe `lenet-gtsrb` on `tanganke/gtsrb`, strategy `scratch` from random weights" in text
    assert "(100 training images)" in text
    assert "**Test accuracy:**" in text and "on 86 images of `tanganke/gtsrb`" in text


def test_without_flags_each_tab_serves_the_newest_local_release_that_fits_it(
    app: ModuleType, release: Path, pets_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil

    runs = tmp_path / "runs"
    for name, source, age in [
        ("old-signs", release, 300),
        ("new-signs", release, 100),
        ("pets", pets_release, 200),
        ("newest-but-five-classes", release, 0),
    ]:
        shutil.copytree(source, runs / name / "model")
        for f in (runs / name / "model").iterdir():
            os.utime(f, (f.stat().st_atime, f.stat().st_mtime - age))
    config = runs / "newest-but-five-classes" / "model" / "config.json"
    config.write_text(config.read_text().replace('"Stop"', '"Halt"'))  # not GTSRB's labels: never chosen
    (runs / "damaged" / "model").mkdir(parents=True)
    (runs / "damaged" / "model" / "config.json").write_text("{not json")
    shutil.copytree(release, runs / "deep" / "model")
    (runs / "deep" / "model" / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # no RecursionError
    monkeypatch.setattr(app, "RUNS_DIRS", (runs,))
    assert app.model_source(None, "sign") == (runs / "new-signs" / "model").resolve()
    assert app.model_source(None, "pet") == (runs / "pets" / "model").resolve()
    assert app.model_source("someone/model", "pet") == "someone/model"  # a flag or variable wins
    monkeypatch.setattr(app, "RUNS_DIRS", (tmp_path / "empty",))
    assert app.model_source(None, "pet") is None


def test_a_tab_without_a_model_says_how_to_get_one_and_the_other_tab_works(
    app: ModuleType, predictors: dict[str, Predictor], sign_file: Path, tmp_path: Path
) -> None:
    demo = app.build_demo(predictors["sign"], None, examples_dir=tmp_path / "ex")
    url = app.serve(demo, "127.0.0.1", block=False)
    try:
        client = gradio_client.Client(url, verbose=False)
        assert client.predict(upload(sign_file), api_name="/classify_sign")["label"]
        with pytest.raises(Exception, match=r"No cats & dogs model yet: train one with") as error:
            client.predict(upload(sign_file), api_name="/classify_pet")
        assert len(str(error.value).strip().splitlines()) == 1
    finally:
        demo.close()
    slot = app.ModelSlot(None, missing=app.NO_MODEL["pet"])
    assert slot.summary() == f"**{app.NO_MODEL['pet']}**"  # the line the page shows under the tab


def broken_copy(release: Path, directory: Path, change) -> Path:
    shutil.copytree(release, directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(change(config))
    return directory


BROKEN_CONFIGS = {
    "nested 100,000 deep": (lambda c: "[" * 100_000 + "]" * 100_000, "nests deeper than 32 levels"),
    "a repeated label": (
        lambda c: json.dumps({**c, "label_names": ["cat", "cat"]}),
        "label_names repeat 'cat': each output needs its own name",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CONFIGS))
def test_a_broken_release_in_one_tab_says_why_and_the_other_tab_serves(
    app: ModuleType,
    predictors: dict[str, Predictor],
    pets_release: Path,
    sign_file: Path,
    tmp_path: Path,
    case,
) -> None:
    change, message = BROKEN_CONFIGS[case]
    broken = app.ModelSlot(broken_copy(pets_release, tmp_path / "pets", change))
    demo = app.build_demo(predictors["sign"], broken, examples_dir=tmp_path / "ex")
    url = app.serve(demo, "127.0.0.1", block=False)
    try:
        client = gradio_client.Client(url, verbose=False)
        with pytest.raises(Exception, match=r"could not be loaded: config\.json of") as error:
            client.predict(upload(sign_file), api_name="/classify_pet")
        assert message in str(error.value) and len(str(error.value).strip().splitlines()) == 1
        assert client.predict(upload(sign_file), api_name="/classify_sign")["label"]
    finally:
        demo.close()
    summary = broken.summary()  # the line the page shows under the broken tab
    assert summary.startswith("**The model ") and message in summary


def test_facts_of_the_wrong_types_leave_the_summary_without_them(
    app: ModuleType, release: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(release, copy)
    facts = json.loads((copy / "facts.json").read_text())
    for result in facts["results"]:
        result["accuracy"] = "high"
    (copy / "facts.json").write_text(json.dumps(facts))
    summary = app.ModelSlot(copy).summary()
    assert "`lenet5`, 43 classes" in summary and "records no training facts" in summary


def test_preloading_a_broken_release_is_one_line_and_exit_2(
    pets_release: Path, release: Path, monkeypatch, capsys, tmp_path: Path
) -> None:
    change, message = BROKEN_CONFIGS["nested 100,000 deep"]
    broken = broken_copy(pets_release, tmp_path / "pets", change)
    args = ["--signs-model", str(release), "--pets-model", str(broken), "--preload", "--no-compile"]
    code, _, err = run_entry_point(ROOT / "spaces" / "app.py", args, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: The model ") and message in err


# pyproject's core dependencies that only training, evaluation and release need: the Space installs the rest.
NOT_IN_SPACE = {"accelerate", "datasets", "evaluate", "jinja2"}


def test_space_pins_satisfy_pyproject_and_cover_what_the_app_needs() -> None:
    from huggingface_hub import ModelCard

    card = ModelCard((ROOT / "spaces" / "README.md").read_text())
    meta = card.data.to_dict()
    assert meta["sdk"] == "gradio"
    assert meta["app_file"] == "app.py" and meta["python_version"] == "3.11"
    assert meta["datasets"] and len(meta["short_description"]) <= 60
    assert "models" not in meta  # no placeholder repos: scripts/deploy_space.py writes the real ones
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(meta["python_version"])
    declared = {}
    for line in [*project["dependencies"], *project["optional-dependencies"]["space"]]:
        requirement = Requirement(line)
        declared[canonicalize_name(requirement.name)] = requirement.specifier
    pins = {}
    for line in (ROOT / "spaces" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):  # pip options such as --extra-index-url
            requirement = Requirement(line)
            specs = list(requirement.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not pinned with =="
            pins[canonicalize_name(requirement.name)] = specs[0].version
    # A Space installs gradio at sdk_version: a pin in requirements.txt, if any, must be that version.
    assert pins.setdefault("gradio", meta["sdk_version"]) == meta["sdk_version"]
    assert not NOT_IN_SPACE - declared.keys(), f"not in pyproject: {NOT_IN_SPACE - declared.keys()}"
    assert set(pins) == declared.keys() - NOT_IN_SPACE, (
        "requirements.txt pins pyproject's core dependencies but NOT_IN_SPACE, and gradio"
    )
    for name, pinned in pins.items():
        assert declared[name].contains(pinned), (
            f"{name}: the Space pins {pinned}, pyproject asks {declared[name]}"
        )


@pytest.mark.slow
def test_in_a_real_browser_a_bad_file_gets_a_message_and_an_uploaded_sign_is_classified(
    served, predictors: dict[str, Predictor], photos: list[tuple[str, bytes]], sign_file: Path, tmp_path: Path
) -> None:
    if CHROMIUM is None or importlib.util.find_spec("playwright") is None:
        if REQUIRE_BROWSER:
            pytest.fail("TL_HUB_REQUIRE_BROWSER=1 but chromium or playwright is missing: see .ci/run")
        pytest.skip("needs Debian's chromium and the playwright package")
    from playwright.sync_api import expect, sync_playwright

    url, _ = served
    expected = next(iter(predictors["sign"](Image.open(sign_file))))
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(dict(photos)["not_an_image.jpg"])
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            # "load", not "networkidle": a busy machine (the whole suite on 2 cores) may never let the page's
            # connections idle for 500 ms; the locators below wait for what they need.
            page.set_default_timeout(90_000)
            page.goto(url, wait_until="load")
            upload_input = page.locator("input[type=file]").first
            upload_input.set_input_files(str(bad))
            toast = page.get_by_test_id("toast-body").first
            expect(toast).to_contain_text("The file is not a readable image", timeout=30_000)
            page.get_by_test_id("toast-close").first.click()
            page.get_by_role("button", name="Clear").first.click()
            page.locator("input[type=file]").first.set_input_files(str(sign_file))
            expect(page.get_by_test_id("label-output-value").first).to_have_text(expected, timeout=30_000)
            expect(page.get_by_text("Test accuracy:").first).to_be_visible(timeout=30_000)
            shot = tmp_path / "space.png"
            page.screenshot(path=str(shot), full_page=True)
            assert Image.open(shot).size[0] == 1280
        finally:
            browser.close()


DEPLOY = ROOT / "scripts" / "deploy_space.py"
MODELS = ["--signs-model", "tester/s", "--pets-model", "tester/p"]


def run_deploy(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str, str]:
    return run_entry_point(DEPLOY, args, monkeypatch, capsys)


@pytest.mark.slow
def test_the_deployed_space_runs_from_its_own_files_and_serves_the_hub_models(
    fake_hub: FakeHub, release: Path, pets_release: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    push_to_hub(release, PushTarget("tester/lenet"), api=fake_hub.api())
    push_to_hub(pets_release, PushTarget("tester/pets"), api=fake_hub.api())
    fake_hub.repos["tester/demo"] = stale = Repo("tester/demo", "space", False, sdk="gradio")
    stale.add_commit({"tl_hub/removed_module.py": b"", "notes.txt": b"kept"}, "earlier deploy")
    args = ["tester/demo", "--signs-model", "tester/lenet", "--pets-model", "tester/pets"]
    code, out, err = run_deploy(args, monkeypatch, capsys)
    assert code == 0, err
    assert out.strip() == f"Space deployed: {fake_hub.url}/spaces/tester/demo"
    space = fake_hub.repos["tester/demo"]
    files = space.head.files
    assert {
        "app.py",
        "requirements.txt",
        "README.md",
        "tl_hub/inference/predictor.py",
        "tl_hub/models/vgg.py",
    } <= set(files)
    assert "tl_hub/removed_module.py" not in files and files["notes.txt"] == b"kept"
    assert files["app.py"] == (ROOT / "spaces" / "app.py").read_bytes()
    card = SpaceCard(files["README.md"].decode())
    assert card.data.models == ["tester/lenet", "tester/pets"] and card.data.sdk == "gradio"
    assert {k: v["value"] for k, v in space.variables.items()} == {
        "TL_HUB_SIGNS_MODEL": "tester/lenet",
        "TL_HUB_PETS_MODEL": "tester/pets",
    }
    # The Space's checkout: app.py imports the tl_hub folder beside it and loads both models from the Hub.
    checkout = tmp_path / "space"
    for name, data in files.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes(data)
    for key, value in space.variables.items():
        monkeypatch.setenv(key, value["value"])
    script = textwrap.dedent(
        """
        import sys
        from PIL import Image
        import app, tl_hub
        assert tl_hub.__file__.startswith(sys.path[0]), tl_hub.__file__
        args = app.parse_args([])
        for source in (args.signs_model, args.pets_model):
            print(source, next(iter(app.ModelSlot(source).get()(Image.new("RGB", (40, 40), "red")))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=checkout, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["tester/lenet", "tester/pets"]
    assert lines[0].split(" ", 1)[1] in GTSRB_CLASS_NAMES and lines[1].split(" ", 1)[1] in ("cat", "dog")


def test_deploy_space_sends_the_app_package_and_model_variables_through_the_client_it_is_given(
    hub: FakeHub, release: Path
) -> None:
    from tl_hub.release.space import deploy_space

    api = hub.api()
    push_to_hub(release, PushTarget("tester/lenet"), api=api)
    url = deploy_space("tester/demo", ROOT / "spaces", "tester/lenet", api=api)
    assert url == f"{hub.url}/spaces/tester/demo"
    space = hub.repos["tester/demo"]
    assert space.repo_type == "space" and space.sdk == "gradio"
    assert space.head.files["app.py"] == (ROOT / "spaces" / "app.py").read_bytes()
    assert "tl_hub/release/space.py" in space.head.files
    assert SpaceCard(space.head.files["README.md"].decode()).data.models == ["tester/lenet"]
    assert {k: v["value"] for k, v in space.variables.items()} == {"TL_HUB_SIGNS_MODEL": "tester/lenet"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-a-space-id", *MODELS], "SPACE_ID 'not-a-space-id' is not of the form USER/NAME"),
        (["tester/demo", *MODELS], "--signs-model 'tester/s': no tl_hub model"),
        (["tester/demo", "--signs-model", "tester/s"], "the following arguments are required: --pets-model"),
    ],
)
def test_deploy_errors_are_one_line_and_deploy_nothing(
    fake_hub: FakeHub, args: list[str], message: str, monkeypatch, capsys
) -> None:
    code, _, err = run_deploy(args, monkeypatch, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "tester/demo" not in fake_hub.repos


def test_deploying_a_local_model_directory_says_to_push_it_first(
    fake_hub: FakeHub, release: Path, monkeypatch, capsys
) -> None:
    args = ["tester/demo", "--signs-model", str(release), "--pets-model", "tester/p"]
    code, _, err = run_deploy(args, monkeypatch, capsys)
    assert code == 2 and "a local path, which a Space cannot read: push it with" in err


def test_the_app_and_deploying_take_the_model_flags_declared_once(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    from tl_hub.release.space import SPACE_MODELS

    monkeypatch.setenv("TL_HUB_PETS_MODEL", "someone/pets")
    args = app.parse_args(["--signs-model", "runs/x/model"])
    assert (args.signs_model, args.pets_model) == ("runs/x/model", "someone/pets")  # the variable: default
    deploy = runpy.run_path(str(DEPLOY))["parse_args"](["tester/demo", *MODELS])
    assert (deploy.signs_model, deploy.pets_model) == ("tester/s", "tester/p")
    assert [m.flag for m in SPACE_MODELS] == ["--signs-model", "--pets-model"]
    for path in (ROOT / "spaces" / "app.py", DEPLOY):
        assert '"--signs-model"' not in path.read_text()  # declared in tl_hub.cli only


def test_the_pets_tab_offers_its_releases_own_examples(
    app: ModuleType, pets_release: Path, tmp_path: Path
) -> None:
    import shutil

    model = tmp_path / "pets" / "model"
    shutil.copytree(pets_release, model)
    (model / "examples").mkdir()
    for name in ("00-cat.jpg", "01-dog.jpg"):
        Image.new("RGB", (32, 32), "orange").save(model / "examples" / name)
    demo = app.build_demo(None, str(model), examples_dir=tmp_path / "ex")
    datasets = [c["props"] for c in demo.config["components"] if c["type"] == "dataset"]
    labels = [d.get("label") for d in datasets]
    assert labels == ["Examples (rendered by tl_hub)", "Examples (from the model's validation split)"]
    shown = [Path(s[0]["path"]).name for s in datasets[1]["samples"]]
    assert shown == ["00-cat.jpg", "01-dog.jpg"]
