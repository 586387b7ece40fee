"""A release directory loads back to the same model, strictly, and its files say what users read."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from tl_hub import LeNet5, Predictor
from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.loading import decode_split
from tl_hub.data.preprocess import model_input, normalize
from tl_hub.data.sources import open_dataset
from tl_hub.errors import TLHubError
from tl_hub.recipes import get_recipe
from tl_hub.release.card import render_model_card
from tl_hub.release.files import RELEASE_FILES
from tl_hub.release.load import from_pretrained
from tl_hub.scoring import image_inputs, predict

RECIPE = get_recipe("lenet-gtsrb")


def test_every_release_file_is_written(release: Path) -> None:
    assert sorted(p.name for p in release.iterdir()) == sorted(RELEASE_FILES)
    config = json.loads((release / "config.json").read_text())
    assert config["architecture"] == "lenet5" and config["num_classes"] == 43
    assert config["label_names"][14] == "Stop"
    assert config["preprocess"]["grayscale"] and config["preprocess"]["equalize"] == "clahe"
    assert config["training"]["train"]["lr"] == 1e-3


def test_from_pretrained_gives_identical_logits(release: Path) -> None:
    original = LeNet5(num_classes=43)
    original.load_state_dict(load_file(release / "model.safetensors"))
    x = torch.randn(5, 1, 32, 32)
    loaded, config = from_pretrained(str(release), expected_architecture="lenet5")
    assert isinstance(loaded, LeNet5) and config.num_classes == 43
    assert not loaded.training
    assert torch.equal(loaded(x), original.eval()(x))


def test_model_card_parses_and_its_model_index_holds_the_metrics(release: Path) -> None:
    render_model_card(release, repo_id="someone/lenet-gtsrb").save(release.parent / "card.md")
    card = ModelCard.load(release.parent / "card.md")
    assert card.data.pipeline_tag == "image-classification"
    assert card.data.library_name == "tl_hub"
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    metrics = json.loads((release / "metrics.json").read_text())
    assert results[("test", "accuracy")] == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)
    assert results[("validation", "f1")] == pytest.approx(metrics["validation"]["macro_f1"], abs=1e-4)
    assert {r.metric_args["average"] for r in card.data.eval_results if r.metric_type == "f1"} == {"macro"}
    assert {r.dataset_type for r in card.data.eval_results} == {"tanganke/gtsrb"}
    text = card.text
    assert "| accuracy | test | tanganke/gtsrb |" in text and "| 0.9550 |" in text  # beside the study's 95.5%
    assert "LeCun" in text and "Stallkamp" in text
    assert 'Predictor.from_pretrained("someone/lenet-gtsrb")' in text
    assert "training_curves.png" in text and "confusion_matrix.png" in text


def test_strict_loading_names_the_difference(release: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    config = json.loads((release / "config.json").read_text())
    (bad / "config.json").write_text(
        json.dumps({**config, "num_classes": 10, "label_names": [str(i) for i in range(10)]})
    )
    state = load_file(release / "model.safetensors")
    save_file(state, bad / "model.safetensors")
    with pytest.raises(
        TLHubError, match=r"shape mismatch \(file vs model\): fc.weight \(43, 84\) vs \(10, 84\)"
    ):
        from_pretrained(bad)
    del state["fc.bias"]
    (bad / "config.json").write_text(json.dumps(config))
    save_file(state, bad / "model.safetensors")
    with pytest.raises(TLHubError, match=r"missing tensors: fc.bias"):
        from_pretrained(bad)


def test_missing_release_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TLHubError, match=r"config.json not found in"):
        Predictor.from_pretrained(tmp_path)


def test_training_evaluation_and_inference_preprocess_bit_for_bit(release: Path, tmp_path: Path) -> None:
    """The tensors (and logits) that evaluation feeds equal what Predictor feeds for the same files."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, TensorDataset

    test = open_dataset("synthetic", 4)["test"]
    predictor = Predictor.from_pretrained(release)
    split, _ = decode_split(test, "image", "label", predictor.preprocess, "test")
    raw = [row["image"] for row in test]  # PIL images, as a user would pass them
    paths = []
    for i, image in enumerate(raw[:5]):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    assert torch.equal(normalize(split.images, predictor.preprocess), model_input(raw, predictor.preprocess))
    assert torch.equal(model_input(paths, predictor.preprocess), model_input(raw[:5], predictor.preprocess))
    accelerator = Accelerator(cpu=True)
    # One batch on both paths: kernels may round differently for other batch shapes.
    logits, _ = predict(
        predictor.model,
        DataLoader(TensorDataset(split.images, split.labels), batch_size=len(split)),
        accelerator,
        image_inputs(predictor.preprocess),
        "test",
    )
    assert torch.equal(torch.from_numpy(logits), predictor.logits(raw))
    top = predictor(paths[0], top_k=3)
    assert len(top) == 3 and list(top.values()) == sorted(top.values(), reverse=True)
    assert set(top) <= set(predictor.label_names)


def _damage_config(config: dict, case: str):
    damaged = {
        "not JSON": "{architecture: lenet5",
        "empty": "",
        "a list": [1, 2],
        "no architecture": {k: v for k, v in config.items() if k != "architecture"},
        "no label_names": {k: v for k, v in config.items() if k != "label_names"},
        "no preprocess": {k: v for k, v in config.items() if k != "preprocess"},
        "unknown architecture": {**config, "architecture": "resnet9"},
        "num_classes off": {**config, "num_classes": 44},
        "labels not names": {**config, "label_names": [1, 2]},
        "input_size a string": {**config, "preprocess": {**config["preprocess"], "input_size": "32"}},
        "input_size huge": {**config, "preprocess": {**config["preprocess"], "input_size": 100000}},
        "unknown preprocess key": {**config, "preprocess": {**config["preprocess"], "sharpen": True}},
        "unknown model arg": {**config, "model_args": {"drop_rate": 0.3, "depth": 50}},
        "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
        "nested 40 deep": json.dumps({**config, "extra": json.loads("[" * 40 + "]" * 40)}),
        "over 32 MB": json.dumps({**config, "extra": "x" * (33 * 2**20)}),
        "a repeated name": {**config, "label_names": ["Stop", *config["label_names"][1:-1], "Stop"]},
        "an empty name": {**config, "label_names": ["", *config["label_names"][1:]]},
        "num_classes a string": {**config, "num_classes": "43"},
        "num_classes true": {**config, "label_names": ["a"], "num_classes": True},
        "drop_rate a string": {**config, "model_args": {"drop_rate": "0.3"}},
        "drop_rate 2": {**config, "model_args": {"drop_rate": 2}},
        "architecture a list": {**config, "architecture": ["lenet5"]},
        "preprocess a list": {**config, "preprocess": [32]},
    }[case]
    return damaged if isinstance(damaged, str) else json.dumps(damaged)


def test_an_unreadable_training_record_does_not_stop_the_model_from_loading(
    release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    config = json.loads((release / "config.json").read_text())
    config["training"]["train"]["warmup_schedule"] = "a field from a newer tl_hub"
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "model.safetensors").write_bytes((release / "model.safetensors").read_bytes())
    _, loaded = from_pretrained(bad)
    assert loaded.training is None and loaded.label_names == tuple(GTSRB_CLASS_NAMES)
    assert "its training record is unreadable" in caplog.text


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not JSON", "config.json of .* is not valid JSON"),
        ("empty", "config.json of .* is not valid JSON"),
        ("a list", "the whole file is a list, not a JSON object"),
        ("no architecture", "architecture is missing"),
        ("no label_names", "label_names is missing"),
        ("no preprocess", "preprocess is missing"),
        (
            "unknown architecture",
            "unknown architecture 'resnet9': choose one of lenet5, signcnn, signcnn_small, vgg16",
        ),
        ("num_classes off", "num_classes = 44 differs from the 43 label_names"),
        ("labels not names", "label_names = .* is not a non-empty list of names"),
        ("input_size a string", "preprocess is invalid .*input_size='32'"),
        (
            "input_size huge",
            "preprocess is invalid .*input_size=100000 is invalid: expected an integer from 8",
        ),
        ("unknown preprocess key", "preprocess is invalid .*sharpen"),
        ("unknown model arg", "model_args = .* is not a subset of \\['drop_rate'\\]"),
        ("nested 100,000 deep", "config.json of .* nests deeper than 32 levels: is it a tl_hub release?"),
        ("nested 40 deep", "config.json of .* nests deeper than 32 levels"),
        ("over 32 MB", "config.json of .* is 33 MB, over the 32 MB a release's JSON file may have"),
        ("a repeated name", "label_names repeat 'Stop': each output needs its own name"),
        ("an empty name", "label_names = .* is not a non-empty list of names"),
        ("num_classes a string", "num_classes = '43' differs from the 43 label_names"),
        ("num_classes true", "num_classes = True differs from the 1 label_names"),
        (
            "drop_rate a string",
            "model_args.drop_rate = '0.3' is invalid: expected a probability in \\[0, 1\\)",
        ),
        ("drop_rate 2", "model_args.drop_rate = '2' is invalid"),
        ("architecture a list", "architecture "),
        ("preprocess a list", "preprocess is invalid"),
    ],
)
def test_a_damaged_config_is_one_clear_error_before_any_model_is_built(
    release: Path, tmp_path: Path, case: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tl_hub.release.load as load

    monkeypatch.setattr(load, "create_model", lambda *a, **k: pytest.fail("a model was built"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(_damage_config(json.loads((release / "config.json").read_text()), case))
    (bad / "model.safetensors").write_bytes((release / "model.safetensors").read_bytes())
    with pytest.raises(TLHubError, match=message) as error:
        from_pretrained(bad)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("size", [0, 100])
def test_truncated_weights_are_one_clear_error(release: Path, tmp_path: Path, size: int) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((release / "config.json").read_text())
    (bad / "model.safetensors").write_bytes((release / "model.safetensors").read_bytes()[:size])
    with pytest.raises(TLHubError, match=r"model.safetensors of .* cannot be read .*: is it truncated?"):
        from_pretrained(bad)


def test_weights_that_are_not_finite_are_refused(release: Path, tmp_path: Path) -> None:
    """A diverged model (every weight NaN) would predict NaN probabilities: loading it is an error instead."""

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((release / "config.json").read_text())
    state = load_file(release / "model.safetensors")
    state["fc.bias"][3] = float("nan")
    save_file(state, bad / "model.safetensors")
    with pytest.raises(
        TLHubError, match=r"are not finite \(NaN or infinite\) in 1 of .* tensors, fc.bias first"
    ):
        Predictor.from_pretrained(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update({"fc.weight": s["fc.weight"].to(torch.int32)}),
            "wrong dtype: fc.weight is int32",
        ),
        (
            lambda s: s.update({"fc.bias": s["fc.bias"].to(torch.bool)}),
            "fc.bias is bool, expected a floating",
        ),
        (lambda s: s.update({"fc.bias": s["fc.bias"].to(torch.complex64)}), "fc.bias is complex64"),
        (lambda s: s.update({"fc.bias": s["fc.bias"][:-1]}), "shape mismatch (file vs model): fc.bias (42,)"),
    ],
    ids=["int32 weights", "bool bias", "complex bias", "short bias"],
)
def test_weights_of_another_dtype_or_shape_are_refused_not_cast(
    release: Path, tmp_path: Path, change, message: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((release / "config.json").read_text())
    state = load_file(release / "model.safetensors")
    change(state)
    save_file(state, bad / "model.safetensors")
    with pytest.raises(TLHubError) as error:
        from_pretrained(bad)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_half_precision_weights_load(release: Path, tmp_path: Path) -> None:
    """A float16 or bfloat16 release is a floating-point one: it loads (cast to the model's float32)."""
    bad = tmp_path / "half"
    bad.mkdir()
    (bad / "config.json").write_text((release / "config.json").read_text())
    save_file(
        {k: v.half() for k, v in load_file(release / "model.safetensors").items()}, bad / "model.safetensors"
    )
    model, _ = from_pretrained(bad)
    assert model.fc.weight.dtype == torch.float32


@pytest.mark.parametrize(("name", "shown"), [(None, "my-signs"), ("GTSRB (official training set)", None)])
def test_a_local_dataset_is_named_not_located_in_the_card(tmp_path: Path, name: str | None, shown) -> None:
    from .conftest import write_fake_release

    folder = tmp_path / "home" / "someone" / "my-signs"
    run = RECIPE.config.replace({"data.dataset": str(folder), "data.dataset_name": name})
    release = write_fake_release(tmp_path / "model", LeNet5(num_classes=43), run, list(GTSRB_CLASS_NAMES))
    card = ModelCard.load(release / "README.md")
    shown = shown or name
    assert "home/someone" not in card.text and "home/someone" not in str(card.data)
    assert f"Dataset: `{shown}`" in card.text
    assert {r.dataset_type for r in card.data.eval_results} == {shown} and card.data.datasets is None
    assert json.loads((release / "metrics.json").read_text())["dataset"] == shown


def test_a_release_holds_a_few_example_images_from_its_validation_split(tmp_path: Path) -> None:
    from PIL import Image

    from tl_hub.data.loading import SplitData
    from tl_hub.release.files import EXAMPLES_DIR, MAX_EXAMPLE_BYTES, release_files

    from .conftest import write_fake_release

    labels = torch.tensor([1, 0] * 10)
    images = torch.randint(0, 256, (20, 1, 32, 32), dtype=torch.uint8)  # grayscale, as LeNet-5 sees them
    names = ["cat", "dog"]
    directory = write_fake_release(
        tmp_path / "model", LeNet5(num_classes=2), RECIPE.config, names, examples=SplitData(images, labels)
    )
    files = sorted((directory / EXAMPLES_DIR).iterdir())
    assert [f.name for f in files] == [f"{i:02d}-{n}.jpg" for i, n in enumerate(["cat"] * 4 + ["dog"] * 4)]
    for f in files:
        assert f.stat().st_size <= MAX_EXAMPLE_BYTES
        with Image.open(f) as image:
            assert image.format == "JPEG" and image.size == (32, 32) and image.mode == "L"
    with Image.open(files[0]) as image:  # the first cat of the split, as it was (within JPEG's loss)
        assert abs(np.asarray(image, dtype=float) - images[1, 0].numpy()).mean() < 40
    assert release_files(directory) == [*RELEASE_FILES, *(f"{EXAMPLES_DIR}/{f.name}" for f in files)]
    # written again without examples (another run in the same directory): the earlier ones go
    write_fake_release(directory, LeNet5(num_classes=2), RECIPE.config, names)
    assert not (directory / EXAMPLES_DIR).exists() and release_files(directory) == list(RELEASE_FILES)


def test_example_images_are_spread_over_the_classes_and_kept_small(tmp_path: Path) -> None:
    from PIL import Image

    from tl_hub.data.loading import SplitData
    from tl_hub.release.files import MAX_EXAMPLE_BYTES
    from tl_hub.release.writer import example_indices, write_examples

    assert example_indices(torch.tensor([1, 1, 0, 0, 0, 1]).numpy(), 2) == [2, 3, 4, 0, 1, 5]
    assert example_indices(torch.tensor([1] * 9).numpy(), 2) == list(range(8))  # n // classes present
    assert example_indices(torch.tensor([], dtype=torch.long).numpy(), 2) == []
    signs = torch.arange(43).repeat(3).numpy()  # 8 of GTSRB's 43 classes, evenly spaced, one image each
    assert example_indices(signs, 43) == [0, 6, 12, 18, 24, 30, 36, 42]
    noise = torch.randint(0, 256, (10, 3, 256, 256), dtype=torch.uint8)  # compresses as badly as can be
    paths = write_examples(tmp_path, SplitData(noise, torch.arange(10) % 2), ["cat", "dog"])
    assert [p.name for p in paths] == [f"{i:02d}-{n}.jpg" for i, n in enumerate(["cat"] * 4 + ["dog"] * 4)]
    for p in paths:
        assert p.stat().st_size <= MAX_EXAMPLE_BYTES
        with Image.open(p) as image:
            assert image.size == (224, 224) and image.mode == "RGB"
