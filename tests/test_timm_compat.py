"""A VGG16 release is a timm model too: timm users load it from the Hub with the same weights and labels."""

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from tl_hub.config import ModelConfig, PreprocessConfig, RunConfig
from tl_hub.errors import TLHubError
from tl_hub.models import create_model
from tl_hub.models.vgg import POOLED_CHANNELS, POOLED_RATIO, STUDY_HIDDEN, study_head
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.files import save_pretrained
from tl_hub.release.load import from_pretrained

from .hub_server import FakeHub

IMAGENET = PreprocessConfig(
    input_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.875
)


@pytest.fixture(scope="module")
def vgg() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)


def test_the_head_computes_the_studys_flatten_dense_relu_dropout_dense(vgg: torch.nn.Module) -> None:
    x = torch.randn(3, 3, 32, 32)
    vgg.eval()
    with torch.no_grad():
        features = torch.nn.functional.adaptive_avg_pool2d(vgg.forward_features(x), (7, 7))  # (B, 512, 7, 7)
        fc1 = vgg.pre_logits.fc1  # the study's Dense 256, as a 7x7 convolution
        dense = torch.nn.Linear(512 * 7 * 7, STUDY_HIDDEN)
        dense.weight.copy_(fc1.weight.flatten(1))
        dense.bias.copy_(fc1.bias)
        hidden = torch.relu(dense(features.flatten(1)))  # Flatten -> Dense 256 -> ReLU (Dropout: eval)
        expected = hidden @ vgg.head.fc.weight[:, :STUDY_HIDDEN].T + vgg.head.fc.bias  # Dense 2
        assert torch.allclose(vgg(x), expected, atol=1e-5)
    dropouts = [m for m in vgg.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.5  # one Dropout 0.5, as in the study
    assert not vgg.pre_logits.fc2.weight.requires_grad  # the identity embedding never trains


@pytest.mark.slow
def test_timm_create_model_from_the_hub_gives_the_same_model(
    fake_hub: FakeHub, vgg: torch.nn.Module, tmp_path: Path
) -> None:
    run = RunConfig(recipe="vgg16-catsdogs", model=ModelConfig("vgg16", 0.5), preprocess=IMAGENET)
    save_pretrained(vgg, tmp_path / "release", ReleaseConfig.from_run(run, ["cat", "dog"]))
    api = fake_hub.api()
    api.create_repo("tester/vgg16-pets")
    api.upload_folder(repo_id="tester/vgg16-pets", folder_path=str(tmp_path / "release"))

    # timm takes no Hub client: `fake_hub` points huggingface_hub's defaults at the server.
    timm_model = timm.create_model("hf-hub:tester/vgg16-pets", pretrained=True).eval()
    ours, config = from_pretrained("tester/vgg16-pets", api=api)
    assert timm_model.pretrained_cfg["label_names"] == list(config.label_names) == ["cat", "dog"]
    data_config = timm.data.resolve_data_config({}, model=timm_model)
    assert tuple(data_config["input_size"]) == (3, 32, 32) and data_config["crop_pct"] == 0.875
    assert tuple(data_config["mean"]) == IMAGENET.mean and tuple(data_config["std"]) == IMAGENET.std
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(timm_model(x), ours(x))
        assert torch.equal(ours(x), vgg.eval()(x))


@pytest.fixture(scope="module")
def pooled() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=3, in_chans=3, img_size=32, drop_rate=0.2, pooled_head=True)
    with torch.no_grad():  # a trained classifier (it starts at zero)
        model.head.fc.weight[:, :POOLED_CHANNELS].normal_()
        model.head.fc.bias.normal_()
    return model.eval()


@pytest.mark.parametrize("side", [224, 256, 32])  # 7x7 maps, 8x8 (several 7x7 windows), 1x1 of test images
@pytest.mark.parametrize("head", ["study", "pooled"])
def test_the_fast_head_on_cached_features_equals_timms_forward_head(
    vgg: torch.nn.Module, pooled: torch.nn.Module, side: int, head: str
) -> None:
    model = vgg if head == "study" else pooled
    model.eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, side, side))
        assert torch.allclose(study_head(model, features), model.forward_head(features), atol=1e-4)


def test_the_pooled_head_is_global_average_pooling_then_dense_in_timms_vgg16_shape(
    pooled: torch.nn.Module, tmp_path: Path
) -> None:
    features = torch.rand(2, 512, 7, 7)  # what the base gives a 224x224 image (>= 0: after ReLU, max-pool)
    with torch.no_grad():
        expected = features.mean((2, 3)) @ pooled.head.fc.weight[:, :POOLED_CHANNELS].T + pooled.head.fc.bias
        assert torch.allclose(pooled.forward_head(features), expected, atol=1e-5)
    trains = {n for n, p in pooled.named_parameters() if p.requires_grad and not n.startswith("features.")}
    assert trains == {"head.fc.weight", "head.fc.bias"}  # the pooling and the embedding never train
    dropouts = [m for m in pooled.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.2  # on the pooled features, before the Dense layer

    # The release is timm's vgg16 with a model_arg: timm builds it and computes the same.
    run = RunConfig(
        recipe="vgg16-catsdogs-finetune",
        model=ModelConfig("vgg16", 0.2, pooled_head=True),
        preprocess=IMAGENET,
    )
    config = ReleaseConfig.from_run(run, ["cat", "dog", "fox"])
    assert config.model_args == {"drop_rate": 0.2, "mlp_ratio": POOLED_RATIO}
    save_pretrained(pooled, tmp_path / "release", config)
    theirs = timm.create_model("vgg16", num_classes=3, **config.model_args).eval()
    theirs.load_state_dict(load_file(tmp_path / "release" / "model.safetensors"))
    ours, _ = from_pretrained(tmp_path / "release")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs(x), ours(x)) and torch.equal(ours(x), pooled(x))


def test_a_release_with_a_vgg16_head_tl_hub_does_not_build_is_one_clear_error(
    vgg16_release: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    config = json.loads((vgg16_release / "config.json").read_text())
    config["model_args"]["mlp_ratio"] = 0.3
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "model.safetensors").write_bytes((vgg16_release / "model.safetensors").read_bytes())
    with pytest.raises(TLHubError, match=r"mlp_ratio=0.3 is not a VGG16 head tl_hub builds: 0.0625 .*0.125"):
        from_pretrained(bad)
