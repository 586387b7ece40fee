import pytest
import torch

from tl_hub.models import ARCHITECTURES, LeNet5, create_model


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


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet9'.*lenet5"):
        create_model("resnet9", num_classes=2, in_chans=3, img_size=32, drop_rate=0.0)
