"""A VGG16 release is a timm model too: timm users load it from the Hub with the same weights and labels."""

from pathlib import Path

import pytest
import timm
import torch

from tl_hub.config import ModelConfig, PreprocessConfig, RunConfig
from tl_hub.models import create_model
from tl_hub.models.vgg import STUDY_HIDDEN
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


@pytest.mark.parametrize("side", [224, 32])  # 7x7 maps, and the 1x1 maps of small test images
def test_the_fast_head_on_cached_features_equals_timms_forward_head(vgg: torch.nn.Module, side: int) -> None:
    from tl_hub.models.vgg import study_head

    vgg.eval()
    with torch.no_grad():
        features = vgg.forward_features(torch.randn(2, 3, side, side))
        assert torch.allclose(study_head(vgg, features), vgg.forward_head(features), atol=1e-5)
