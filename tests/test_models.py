import pytest
import torch

from tl_hub.errors import ConfigError
from tl_hub.models import ARCHITECTURES, LeNet5, create_model, get_architecture
from tl_hub.models.anatomy import classifier_name, feature_shape, parameter_groups


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("in_chans", "img_size"), [(1, 32), (3, 32), (1, 48)])
def test_every_architecture_maps_a_batch_to_logits(architecture: str, in_chans: int, img_size: int) -> None:
    model = create_model(architecture, num_classes=7, in_chans=in_chans, img_size=img_size, drop_rate=0.3)
    out = model(torch.randn(2, in_chans, img_size, img_size))
    assert out.shape == (2, 7)


def test_lenet5_has_the_papers_layer_sizes() -> None:
    model = LeNet5(num_classes=43)
    x = torch.randn(4, 1, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (4, 16, 5, 5)
    assert model.forward_head(features, pre_logits=True).shape == (4, 84)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(6, (5, 5)), (16, (5, 5))]
    linears = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [120, 84, 43]


def test_signcnn_is_compact_batch_normalized_and_sees_colour() -> None:
    from tl_hub.recipes import get_recipe

    run = get_recipe("cnn-gtsrb").config
    model = create_model(
        "signcnn", 43, run.preprocess.channels, run.preprocess.input_size, run.model.drop_rate
    )
    assert run.preprocess.channels == 3
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000  # the Space answers in milliseconds
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 6
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 128, 4, 4)
    groups = parameter_groups(model, "features")
    assert groups.head and all(n.startswith(("pre_logits", "fc")) for n in groups.head)
    assert all(
        n.startswith("features.") and int(n.split(".")[1]) >= 14 for n in groups.top
    )  # the third stage


def test_reset_classifier_changes_only_the_last_layer() -> None:
    model = LeNet5(num_classes=43)
    before = model.pre_logits[1].weight.clone()
    model.reset_classifier(2)
    assert model.get_classifier().out_features == 2
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2)
    assert torch.equal(model.pre_logits[1].weight, before)


def test_too_small_input_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="img_size=12 is too small"):
        LeNet5(img_size=12)
    for name in ("signcnn", "signcnn_small"):  # below the flags' floor of 8: the Python API's case
        with pytest.raises(
            ConfigError, match=r"img_size=7 is too small for SignCNN: .* need 8 pixels or more"
        ):
            create_model(name, num_classes=43, in_chans=3, img_size=7, drop_rate=0.3)
    with pytest.raises(ValueError, match=r"img_size=31 is too small for VGG16: .* need 32 pixels or more"):
        create_model("vgg16", num_classes=2, in_chans=3, img_size=31, drop_rate=0.5)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet9'.*lenet5"):
        create_model("resnet9", num_classes=2, in_chans=3, img_size=32, drop_rate=0.0)


# -- the registry: what every architecture family gives, read from the model ------------------------------


def build(architecture: str, num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(architecture, num_classes=num_classes, in_chans=3, img_size=32, drop_rate=0.0)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_classifier_is_what_reset_classifier_replaces(architecture: str) -> None:
    model = build(architecture)
    name = classifier_name(model)
    before = {k: v.shape for k, v in model.state_dict().items()}
    model.reset_classifier(7)
    after = {k: v.shape for k, v in model.state_dict().items()}
    changed = {k.rsplit(".", 1)[0] for k in before if before[k] != after[k]}
    assert changed == {name}


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_parameter_groups_cover_the_model_once_with_the_last_stage_on_top(architecture: str) -> None:
    model = build(architecture)
    arch = get_architecture(architecture)
    groups = parameter_groups(model, arch.base)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(groups.head + groups.top + groups.rest + groups.fixed) == sorted(names)
    assert groups.top and groups.head and all(n.startswith(arch.base + ".") for n in groups.top + groups.rest)
    assert classifier_name(model) + ".weight" in groups.head
    # The last stage is the base's last convolutions: nothing with parameters follows it in the base.
    layers = list(model.get_submodule(arch.base))
    assert isinstance(layers[groups.top_start], torch.nn.Conv2d)
    stage_ends = [f["module"] for f in model.feature_info]
    assert any(int(m.split(".")[-1]) < groups.top_start for m in stage_ends)


def test_the_last_stage_is_the_studys_top_block() -> None:
    assert parameter_groups(build("lenet5"), "features").top_start == 3  # conv2
    assert parameter_groups(build("vgg16"), "features").top_start == 24  # conv5_1


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("img_size", [32, 48])
def test_feature_shape_is_what_forward_features_gives(architecture: str, img_size: int) -> None:
    model = build(architecture)
    with torch.no_grad():
        out = model.forward_features(torch.zeros(2, 3, img_size, img_size))
    assert feature_shape(model, 3, img_size) == tuple(out.shape[1:])


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_round_trips_through_a_release(architecture: str, tmp_path) -> None:
    from tl_hub.config import ModelConfig, PreprocessConfig, RunConfig
    from tl_hub.release.config import ReleaseConfig
    from tl_hub.release.files import save_pretrained
    from tl_hub.release.load import from_pretrained

    model = build(architecture).eval()
    run = RunConfig(recipe="lenet-gtsrb", model=ModelConfig(architecture), preprocess=PreprocessConfig(32))
    save_pretrained(model, tmp_path, ReleaseConfig.from_run(run, ["a", "b", "c"]))
    loaded, config = from_pretrained(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert config.architecture == architecture and config.label_names == ("a", "b", "c")
