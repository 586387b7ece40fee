"""Any timm backbone: strategies, the feature cache, releases and --model, on timm's tiny test models
(random weights, small inputs, no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from tl_hub.accelerator import make_accelerator
from tl_hub.cli import model_changes
from tl_hub.config import PreprocessConfig, TransferConfig
from tl_hub.inference.predictor import Predictor
from tl_hub.models import create_model, get_architecture
from tl_hub.models.anatomy import parameter_groups
from tl_hub.models.sources import resolve_model
from tl_hub.recipes import get_recipe
from tl_hub.training.strategies import TransferPlan
from tl_hub.training.trainer import train

from .hub_server import FakeHub
from .test_cli import TRAIN, run_script

MODELS = ["test_resnet", "test_efficientnet", "test_vit"]  # a CNN, an EfficientNet with BatchNorm, a ViT
SIDE = 64


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=3, in_chans=3, img_size=SIDE, drop_rate=0.1)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("strategy", ["feature-extract", "finetune-top", "finetune-all"])
def test_frozen_tensors_stay_bit_identical_and_the_strategys_ones_train(name: str, strategy: str) -> None:
    model = tiny(name)
    groups = parameter_groups(model, None)
    plan = TransferPlan(model, None, TransferConfig(strategy=strategy, head_epochs=1), lr=0.1)
    plan.start_epoch(model, 2)  # finetune-top: after the head-only epoch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(plan.groups, lr=0.1)
    torch.manual_seed(1)
    F.cross_entropy(model(torch.randn(4, 3, SIDE, SIDE)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    after = model.state_dict()
    params = dict(model.named_parameters())
    moved = {k for k in params if not torch.equal(before[k], after[k])}
    expected = {
        "feature-extract": set(groups.head),
        "finetune-top": set(groups.head) | set(groups.top),
        "finetune-all": set(groups.head) | set(groups.top) | set(groups.rest),
    }[strategy]
    assert {k for k, p in params.items() if p.requires_grad} == expected
    assert set(groups.head) <= moved <= expected  # frozen tensors are bit-identical; the head learned
    if strategy != "feature-extract":
        assert moved & set(groups.top)
    # Frozen BatchNorm keeps its running statistics (eval mode); trained BatchNorm updates them.
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            trains = any(f"{module_name}.weight" == k for k in expected)
            assert module.training == trains, module_name
            if not trains:
                assert torch.equal(
                    before[f"{module_name}.running_mean"], after[f"{module_name}.running_mean"]
                )


def test_the_last_stage_is_timms_last_block_group_with_its_norms() -> None:
    groups = {name: parameter_groups(tiny(name), None) for name in MODELS}
    assert groups["test_resnet"].head == ["fc.weight", "fc.bias"]
    assert {n.split(".")[0] for n in groups["test_resnet"].top} == {"layer4"}
    assert {n.split(".")[0] for n in groups["test_efficientnet"].top} == {"blocks", "conv_head", "bn2"}
    assert {n.split(".")[1] for n in groups["test_efficientnet"].top if n.startswith("blocks.")} == {"4"}
    assert {n.split(".")[0] for n in groups["test_vit"].top} == {"blocks", "norm"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["test_efficientnet", "test_vit"])
def test_a_release_loads_in_tl_hub_and_in_plain_timm_with_identical_logits(
    name: str, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    recipe = get_recipe("timm-finetune").config
    run = recipe.replace(
        {
            **model_changes(recipe, name),
            "model.pretrained": None,
            "preprocess.input_size": SIDE,
            "data.dataset": "synthetic",
            "data.synthetic_per_class": 2,
            "train.epochs": 1,
            "train.batch_size": 16,
            "transfer.strategy": "finetune-all",
        }
    )
    accelerator = make_accelerator()
    train(run, tmp_path / "run", accelerator)
    accelerator.end_training()
    release = tmp_path / "run" / "model"
    config = json.loads((release / "config.json").read_text())
    assert config["architecture"] == name and config["pretrained_cfg"]["input_size"] == [3, SIDE, SIDE]

    api = fake_hub.api()
    api.create_repo(f"tester/{name}")
    api.upload_folder(repo_id=f"tester/{name}", folder_path=str(release))
    # timm takes no Hub client: `fake_hub` points huggingface_hub's defaults at the server.
    plain = timm.create_model(f"hf-hub:tester/{name}", pretrained=True).eval()
    predictor = Predictor.from_pretrained(f"tester/{name}", api=api)
    assert plain.pretrained_cfg["label_names"] == predictor.label_names
    image = torch.randint(0, 256, (90, 120, 3), dtype=torch.uint8).numpy()
    data_config = timm.data.resolve_data_config({}, model=plain)
    x = timm.data.create_transform(**data_config)(__import__("PIL.Image").Image.fromarray(image))
    assert torch.equal(x[None], predictor.inputs([image]))  # the same input tensor ...
    with torch.no_grad():
        assert torch.equal(plain(x[None]), predictor.logits([image]))  # ... and the same logits


@pytest.mark.slow
def test_feature_extract_caches_pooled_features_and_a_rerun_hits_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path / "cache"))
    recipe = get_recipe("timm-finetune").config
    run = recipe.replace(
        {
            **model_changes(recipe, "test_efficientnet"),
            "model.pretrained": None,  # random weights stand in for pretrained ones
            "preprocess.input_size": SIDE,
            "data.dataset": "synthetic",
            "data.synthetic_per_class": 2,
            "train.epochs": 2,
            "train.batch_size": 16,
        }
    )
    assert run.transfer.strategy == "feature-extract"
    accelerator = make_accelerator()
    with caplog.at_level(logging.INFO):
        first = train(run, tmp_path / "a", accelerator)
        assert "feature cache hit" not in caplog.text
        second = train(run, tmp_path / "b", accelerator)
    accelerator.end_training()
    assert "train: feature cache hit" in caplog.text
    assert first["test"] == second["test"]
    cached = list((tmp_path / "cache" / "features").glob("*.safetensors"))
    from safetensors.torch import load_file

    assert {tuple(load_file(p)["features"].shape[1:]) for p in cached} == {(256,)}  # pooled pre-logits


def test_model_names_resolve_to_their_architecture_weights_and_preprocessing(tmp_path: Path) -> None:
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)
    timm.models._hub.save_for_hf(
        model,
        str(tmp_path),
        model_config={"pretrained_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.8}},
        safe_serialization=True,
    )
    source = resolve_model(f"local-dir:{tmp_path}")
    assert (source.architecture, source.weights) == ("test_efficientnet", f"local-dir:{tmp_path}")
    assert source.preprocess.mean == (0.5, 0.5, 0.5) and source.preprocess.crop_pct == 0.8
    assert resolve_model("resnet50.a1_in1k").weights == "resnet50.a1_in1k"
    assert (
        get_architecture("test_vit").fixed_input_size and not get_architecture("test_resnet").fixed_input_size
    )


def test_local_dir_weights_start_everything_but_a_zeroed_classifier(tmp_path: Path) -> None:
    from tl_hub.training.weights import pretrained_model

    donor = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)
    timm.models._hub.save_for_hf(donor, str(tmp_path / "w"), safe_serialization=True)
    arch = get_architecture("test_efficientnet")
    model = pretrained_model(arch, f"local-dir:{tmp_path / 'w'}", 2, 3, SIDE, 0.0)
    theirs = donor.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith("classifier."):
            assert not v.any() and v.shape[0] == 2
        else:
            assert torch.equal(v, theirs[k]), k


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "resnet5O"],
            "--model resnet5O: no such timm model: pass a name from timm.list_models()",
        ),
        (["--model", "local-dir:/no/such/dir"], "holds no config.json: pass a directory saved by timm"),
        (
            ["--recipe", "lenet-gtsrb", "--model", "resnet18"],
            "--model resnet18: recipe lenet-gtsrb trains lenet5, not resnet18: use --recipe timm-finetune",
        ),
        (
            ["--recipe", "timm-finetune", "--model", "lenet5"],
            "recipe timm-finetune trains efficientnet_lite0, not lenet5: use --recipe lenet-gtsrb",
        ),
        (["--model", "test_vit", "--mean", "0.5,x"], "argument --mean: 'x' is not a number"),
        (["--model", "test_vit", "--mean", "0.5,0.5"], "--mean (0.5, 0.5): expected 3 values"),
        (["--model", "test_vit", "--interpolation", "lanczos"], "--interpolation lanczos: expected one of"),
        (["--augment", "flip"], "--augment flip: expected one of sign, photo, timm, none"),
    ],
)
def test_model_flags_reject_bad_input_in_one_line(args, message, monkeypatch, capsys, tmp_path) -> None:
    code, err = run_script(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_preprocessing_follows_the_model_and_yields_to_the_flags() -> None:
    from tl_hub.cli import TRAIN_FLAGS, parser, run_config_from_args

    def run_of(*argv: str):
        return run_config_from_args(parser("x", TRAIN_FLAGS).parse_args(list(argv)))

    vit = run_of("--model", "test_vit")
    assert vit.recipe == "timm-finetune" and vit.model.architecture == "test_vit"
    cfg = timm.models.get_pretrained_cfg("test_vit")
    assert vit.preprocess == PreprocessConfig(
        input_size=cfg.input_size[-1],
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        interpolation=cfg.interpolation,
        crop_pct=cfg.crop_pct,
    )
    custom = run_of(
        "--model", "test_vit", "--input-size", "96", "--crop-pct", "1.0", "--interpolation", "bilinear"
    )
    assert (custom.preprocess.input_size, custom.preprocess.crop_pct, custom.preprocess.interpolation) == (
        96,
        1.0,
        "bilinear",
    )


def test_the_space_serves_a_generic_release_and_describes_it_from_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import sys

    from PIL import Image

    from .conftest import ROOT, write_fake_release

    recipe = get_recipe("timm-finetune").config
    run = recipe.replace({**model_changes(recipe, "test_efficientnet"), "preprocess.input_size": SIDE})
    write_fake_release(tmp_path / "pets", tiny("test_efficientnet").eval(), run, ["cat", "dog", "bird"])
    spec = importlib.util.spec_from_file_location("tl_hub_space_app_generic", ROOT / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, app)
    spec.loader.exec_module(app)

    slot = app.ModelSlot(tmp_path / "pets")
    photo = tmp_path / "photo.png"
    Image.fromarray(torch.randint(0, 256, (80, 100, 3), dtype=torch.uint8).numpy()).save(photo)
    top = app.classify(slot, str(photo))
    assert list(top) == list(Predictor.from_pretrained(tmp_path / "pets")(Image.open(photo), top_k=5))
    assert app.explain(slot, str(photo)).size == (256, 256)  # Grad-CAM on its feature map
    summary = slot.summary()
    assert (
        "`test_efficientnet`" in summary
        and "strategy `feature-extract` from the pretrained weights `test_efficientnet`" in summary
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["test_efficientnet", "test_vit", "vgg16"])
def test_transformers_pipeline_loads_a_timm_release_with_the_predictors_logits(
    name: str, tmp_path: Path
) -> None:
    """`pipeline("image-classification", model=RELEASE_DIR)` (transformers' timm wrapper) reads the release's
    config.json and weights: the same labels, and logits equal to Predictor's within float32 rounding."""
    import numpy as np
    from PIL import Image
    from transformers import pipeline

    from .conftest import write_fake_release

    if name == "vgg16":  # the study's network at 32x32 (its head's input follows the image size)
        recipe = get_recipe("vgg16-catsdogs").config
        run = recipe.replace({"preprocess.input_size": 32, "model.pretrained": None})
        torch.manual_seed(0)
        model = create_model("vgg16", num_classes=3, in_chans=3, img_size=32, drop_rate=0.5)
    else:
        recipe = get_recipe("timm-finetune").config
        run = recipe.replace({**model_changes(recipe, name), "preprocess.input_size": SIDE})
        model = tiny(name)
    release = write_fake_release(tmp_path / "model", model.eval(), run, ["cat", "dog", "bird"])
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)) for _ in range(3)]

    classifier = pipeline("image-classification", model=str(release))
    assert classifier.model.config.id2label == {0: "cat", 1: "dog", 2: "bird"}
    with torch.no_grad():
        theirs = classifier.model(**classifier.image_processor(photos, return_tensors="pt")).logits
    ours = Predictor.from_pretrained(release).logits(photos)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    top = classifier(photos[0], top_k=1)[0]
    assert (
        top["label"]
        == max(Predictor.from_pretrained(release)(photos[0], top_k=3).items(), key=lambda kv: kv[1])[0]
    )
