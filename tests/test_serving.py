"""The Space's library half (tl_hub.inference.serving), without gradio: what each tab serves and says."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_hub.errors import RequestRefused
from tl_hub.inference import examples, serving

from .hub_server import FakeHub


def test_hub_link_links_a_hub_repo_and_names_a_local_directory(release: Path) -> None:
    assert (
        serving.hub_link("someone/lenet-gtsrb")
        == "[someone/lenet-gtsrb](https://huggingface.co/someone/lenet-gtsrb)"
    )
    assert serving.hub_link(str(release)) == f"`{release}` (local directory)"
    assert serving.hub_link(None) == "a model passed in by the caller"


def _photos_parquet(n: int, size: int) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(size)
    images = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size + 10, 3), dtype=np.uint8)).save(buffer, "PNG")
        images.append({"bytes": buffer.getvalue(), "path": f"{i}.png"})
    table = pa.table({"image": images, "labels": [i % 2 for i in range(n)]})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_the_pets_tab_shows_photos_from_the_models_hub_dataset_fetched_once(
    hub: FakeHub, release: Path, tmp_path: Path
) -> None:
    import shutil

    api = hub.api()
    api.create_repo("tester/pet-photos", repo_type="dataset")
    for split, n in (("train", 20), ("test", 8)):
        api.upload_file(
            path_or_fileobj=_photos_parquet(n, 40 if split == "test" else 30),
            path_in_repo=f"data/{split}-00000-of-00001.parquet",
            repo_id="tester/pet-photos",
            repo_type="dataset",
        )
    model = tmp_path / "pets"
    shutil.copytree(release, model)
    facts = json.loads((model / "facts.json").read_text())
    facts["dataset_hub_id"] = "tester/pet-photos"
    (model / "facts.json").write_text(json.dumps(facts))

    cache = tmp_path / "cache"
    photos = examples.dataset_examples(str(model), cache, api=api)
    assert len(photos) == examples.EXAMPLE_PHOTOS
    for photo in photos:
        with Image.open(photo) as image:
            assert image.format == "JPEG" and image.size == (50, 40)  # from the test split's photos
    hub.fail_next(500, times=20)  # fetched once: the second start-up reads the cache
    assert examples.dataset_examples(str(model), cache, api=api) == photos


def test_without_the_hub_or_for_local_data_the_pets_tab_quietly_has_no_examples(
    release: Path, tmp_path: Path
) -> None:
    assert examples.dataset_examples(None, tmp_path) == []
    assert examples.dataset_examples(str(release), tmp_path) == []  # offline (HF_HUB_OFFLINE=1 here)
    assert not list(tmp_path.iterdir())


def test_a_tab_without_a_given_model_serves_the_newest_release_that_fits_it(
    release: Path, tmp_path: Path
) -> None:
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(release, runs / "signs" / "model")
    (runs / "notes" / "model").mkdir(parents=True)  # not a release: passed over
    assert serving.local_release("sign", (runs,)) == (runs / "signs" / "model").resolve()
    assert serving.local_release("pet", (runs,)) is None  # GTSRB's classes are not cat and dog
    assert serving.model_source("someone/model", "sign", (runs,)) == "someone/model"
    assert serving.model_source(None, "sign", (runs,)) == (runs / "signs" / "model").resolve()
    assert serving.model_source(None, "pet", (runs, tmp_path / "nowhere"), "train one") is None


def test_a_model_that_cannot_be_loaded_is_a_clear_refusal_and_is_retried(tmp_path: Path) -> None:
    slot = serving.ModelSlot(tmp_path / "nothing-here")
    for _ in range(2):
        with pytest.raises(RequestRefused, match=r"could not be loaded: .*neither a local directory nor"):
            slot.get()
    assert slot.summary().startswith(f"**The model {tmp_path / 'nothing-here'} could not be loaded: ")
    with pytest.raises(RequestRefused, match="train one"):
        serving.ModelSlot(None, missing="No model yet: train one.").get()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "No image was given: upload a photo"),
        ([1, 2], "Expected an image file, got a list"),
        ({"url": "data:image/png;base64,@@@"}, "The data: URL does not hold valid base64"),
        (
            {"url": "data:image/png;base64," + "A" * (28 * 2**20)},
            "The image is 21 MB, over this app's limit of 15 MB",
        ),
        ({"url": "http://127.0.0.1:1/x.png"}, "This app reads uploaded files only, not URLs"),
        ({"url": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}, "not a readable image"),
    ],
    ids=["nothing", "a list", "bad base64", "a 21 MB data URL", "a remote URL", "not an image"],
)
def test_an_upload_that_is_not_an_image_is_refused_in_one_sentence(payload, message: str) -> None:
    with pytest.raises(RequestRefused, match=message) as refused:
        serving.read_upload(payload)
    assert str(refused.value)[0].isupper() and str(refused.value).endswith(".")
    assert len(str(refused.value).splitlines()) == 1


def test_an_upload_is_read_from_its_path_or_its_inline_data(tmp_path: Path) -> None:
    (tmp_path / "red.png").write_bytes(_png())
    inline = {"url": "data:image/png;base64," + base64.b64encode(_png()).decode()}
    for payload in (str(tmp_path / "red.png"), {"path": str(tmp_path / "red.png")}, inline):
        image = serving.read_upload(payload)
        assert image.size == (8, 6) and image.getpixel((0, 0))[:3] == (255, 0, 0)


def _runs_of(release: Path, runs: Path, records: dict[str, list[tuple[str, str, float]] | None]) -> None:
    """Copies of `release` under `runs/NAME/model`, newest first, each with the results (split, dataset,
    accuracy) given (None: no facts.json at all)."""
    import os
    import shutil

    for age, (name, results) in enumerate(records.items()):
        model = runs / name / "model"
        shutil.copytree(release, model)
        if results is None:
            (model / "facts.json").unlink()
        else:
            facts = json.loads((model / "facts.json").read_text())
            facts["results"] = [
                {**facts["results"][0], "split": s, "dataset": d, "accuracy": a} for s, d, a in results
            ]
            (model / "facts.json").write_text(json.dumps(facts))
        weights = model / "model.safetensors"
        os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime - 100 * age))


def test_with_no_model_named_a_tab_serves_its_most_accurate_release_newest_on_a_tie(
    release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    _runs_of(  # newest first
        release,
        runs,
        {
            "no-facts": None,
            "no-result": [],
            "fair": [("validation", "tanganke/gtsrb", 0.90)],
            "best-twin-new": [("validation", "tanganke/gtsrb", 0.95)],
            "best-twin-old": [("validation", "tanganke/gtsrb", 0.95)],
            "tested": [("validation", "tanganke/gtsrb", 0.99), ("test", "tanganke/gtsrb", 0.93)],
        },
    )
    caplog.set_level("INFO", logger="tl_hub.inference.serving")
    assert serving.model_source(None, "sign", (runs,)) == (runs / "best-twin-new" / "model").resolve()
    (line,) = [r.getMessage() for r in caplog.records]
    assert (
        line.startswith("signs tab: ")
        and "best-twin-new/model (lenet5, 0.950 validation accuracy on " in line
    )
    assert line.endswith("; the most accurate of 6 signs releases, the newest of 2 tied)")
    caplog.clear()
    assert serving.model_source("someone/model", "sign", (runs,)) == "someone/model"  # a name wins
    assert caplog.records[0].getMessage() == "signs tab: someone/model (given)"
    # "tested" counts by its test figure (0.93), not its validation (0.99)
    cands = {c.directory.parent.name: c for c in serving.release_candidates("sign", (runs,))}
    assert cands["tested"].result.split == "test" and cands["no-facts"].result is None


def test_results_on_real_signs_outrank_any_result_on_rendered_ones(release: Path, tmp_path: Path) -> None:
    import shutil

    runs = tmp_path / "runs"
    _runs_of(
        release,
        runs,
        {
            "renders-only": [("validation", "synthetic", 1.0)],  # says nothing of real signs
            "renders-scored-on-real": [("validation", "synthetic", 0.999), ("train", "gtsrb-train-32", 0.84)],
            "none": [],
        },
    )
    path, why = serving.choose_release("sign", (runs,))
    assert path == (runs / "renders-scored-on-real" / "model").resolve()
    assert "(lenet5, 0.840 train accuracy on gtsrb-train-32; the most accurate on real data of 3 " in why
    shutil.rmtree(runs / "renders-scored-on-real")
    path, why = serving.choose_release("sign", (runs,))  # rendered results still beat none
    assert (
        path.parent.name == "renders-only"
        and "1.000 validation accuracy on synthetic (rendered signs)" in why
    )


def test_a_release_serves_the_tab_its_label_names_fit() -> None:
    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES

    assert serving.release_task(list(GTSRB_CLASS_NAMES)) == "sign"
    assert serving.release_task(list(reversed(GTSRB_CLASS_NAMES))) == "sign"  # any order
    assert serving.release_task(list(GTSRB_CLASS_NAMES[:42])) is None
    for names in (["cat", "dog"], ["Dog", "Cat"], ["cats", "dogs"]):
        assert serving.release_task(names) == "pet"
    assert serving.release_task(["cat", "dog", "bird"]) is None and serving.release_task(["cat"]) is None


def test_the_pets_tab_says_what_its_vgg16_release_is_from_the_release(vgg16_release: Path) -> None:
    from tl_hub.inference.predictor import Predictor
    from tl_hub.release.facts import load_facts

    facts = load_facts(vgg16_release)
    assert not facts.recipe.study_results  # 64x64 random weights: not the study's protocol, no study figures
    text = serving.model_summary(Predictor.from_pretrained(vgg16_release), facts)
    assert "`vgg16`, 2 classes, sees a 64x64 RGB image" in text
    assert (
        f"recipe `vgg16-catsdogs` on `{facts.dataset}`, strategy `{facts.strategy}` from random weights"
        in text
    )
    headline = facts.headline()
    assert f"**{headline.split.capitalize()} accuracy:** {headline.accuracy:.1%} on " in text
    assert "study" not in text.lower()


def test_a_model_trained_on_renders_shows_its_figure_on_real_signs(release: Path, tmp_path: Path) -> None:
    from tl_hub.inference.predictor import Predictor
    from tl_hub.release.facts import load_facts

    runs = tmp_path / "runs"
    _runs_of(release, runs, {"r": [("validation", "synthetic", 1.0), ("train", "gtsrb-train-32", 0.843)]})
    model = runs / "r" / "model"
    text = serving.model_summary(Predictor.from_pretrained(model), load_facts(model))
    assert "**Train accuracy:** 84.3% on " in text and "`gtsrb-train-32` (macro-F1" in text
    _runs_of(release, runs, {"only-renders": [("validation", "synthetic", 1.0)]})
    model = runs / "only-renders" / "model"
    text = serving.model_summary(Predictor.from_pretrained(model), load_facts(model))
    assert "**Validation accuracy:** 100.0% on " in text and "`synthetic` (tl_hub's rendered signs)" in text


def test_a_tab_offers_the_releases_own_examples_local_or_from_the_hub(
    hub: FakeHub, release: Path, tmp_path: Path
) -> None:
    import shutil

    from tl_hub.release.files import MAX_EXAMPLE_BYTES
    from tl_hub.release.publish import PushTarget, push_to_hub

    model = tmp_path / "pets" / "model"
    shutil.copytree(release, model)
    own = model / "examples"
    own.mkdir()
    for name, colour in (("00-cat.jpg", "orange"), ("01-dog.jpg", "brown")):
        Image.new("RGB", (40, 30), colour).save(own / name)
    (own / "02-big.jpg").write_bytes(b"\xff" * (MAX_EXAMPLE_BYTES + 1))  # over the limit: passed over
    (own / "03-broken.jpg").write_bytes(b"not a JPEG")  # not an image: passed over
    page = tmp_path / "page"
    paths, label = examples.tab_examples("pet", str(model), page)
    assert [Path(p).name for p in paths] == ["00-cat.jpg", "01-dog.jpg"]
    assert label == "Examples (from the model's validation split)"
    assert all(Path(p).parent == page / "pet" / "release" for p in paths)  # copied where the page serves from
    assert Path(paths[0]).read_bytes() == (own / "00-cat.jpg").read_bytes()

    api = hub.api()
    push_to_hub(model, PushTarget("tester/pets"), api=api)  # the examples go up with the release
    pushed = hub.repos["tester/pets"].head.files
    assert {n for n in pushed if n.startswith("examples/")} == {
        f"examples/0{i}-{n}.jpg" for i, n in ((0, "cat"), (1, "dog"), (3, "broken"))
    }
    assert examples.tab_examples("pet", "tester/pets", tmp_path / "p2", api=api) == ([], "")  # only if asked
    paths, label = examples.tab_examples("pet", "tester/pets", tmp_path / "p3", tmp_path / "cache", api=api)
    assert [Path(p).name for p in paths] == ["00-cat.jpg", "01-dog.jpg"]

    paths, label = examples.tab_examples("sign", str(release), tmp_path / "p4")  # none of its own
    assert label == "Examples (rendered by tl_hub)" and len(paths) == len(examples.EXAMPLE_SIGNS)
