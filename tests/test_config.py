import pytest

from tl_hub.config import AugConfig, DataConfig, PreprocessConfig, RunConfig, TrainConfig
from tl_hub.errors import ConfigError
from tl_hub.recipes import RECIPES, get_recipe


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrainConfig(epochs=0), "epochs=0 is invalid: expected a positive integer"),
        (lambda: TrainConfig(batch_size=-4), "batch_size=-4 is invalid"),
        (lambda: TrainConfig(lr=0.0), "lr=0.0 is invalid: expected a positive finite number"),
        (lambda: TrainConfig(lr=float("inf")), "lr=inf is invalid: expected a positive finite number"),
        (lambda: TrainConfig(lr=float("nan")), "lr=nan is invalid"),
        (lambda: TrainConfig(seed=-1), "seed=-1 is invalid: expected an integer from 0 to 4294965"),
        (lambda: TrainConfig(seed=4294966), "seed=4294966 is invalid"),
        (lambda: DataConfig(train_size=0), "train_size=0 is invalid: expected a positive integer"),
        (
            lambda: PreprocessConfig(input_size=100000),
            "input_size=100000 is invalid: expected an integer from 8",
        ),
        (lambda: TrainConfig(optimizer="rmsprop"), "optimizer='rmsprop' is invalid: expected one of adam"),
        (lambda: AugConfig(rotation=-5), "rotation=-5 is invalid"),
        (lambda: AugConfig(blur_prob=1.5), "blur_prob=1.5 is invalid"),
        (lambda: DataConfig(val_fraction=1.0), "val_fraction=1.0 is invalid"),
        (lambda: DataConfig(max_train_samples=0), "max_train_samples=0 is invalid"),
        (
            lambda: PreprocessConfig(equalize="yes"),
            "equalize='yes' is invalid: expected one of none, global, clahe",
        ),
        (lambda: PreprocessConfig(grayscale=True, mean=(0.5, 0.5, 0.5)), "mean=.* expected 1 values"),
    ],
)
def test_invalid_values_name_the_field_and_the_expectation(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_unknown_recipe_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown recipe 'lenet-mnist': choose one of .*lenet-gtsrb"):
        get_recipe("lenet-mnist")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_configs_round_trip_through_dicts(name: str) -> None:
    config = RECIPES[name].config
    assert RunConfig.from_dict(config.to_dict()) == config


def test_lenet_gtsrb_holds_the_study_protocol() -> None:
    c = get_recipe("lenet-gtsrb").config
    assert (c.train.optimizer, c.train.lr, c.train.batch_size, c.train.epochs) == ("adam", 1e-3, 128, 20)
    assert c.model.drop_rate == pytest.approx(0.3)  # keep probability 0.7
    assert (c.preprocess.input_size, c.preprocess.grayscale, c.preprocess.equalize) == (32, True, "clahe")
    assert c.aug.rotation == 15 and c.aug.blur_prob > 0 and not c.aug.hflip
    assert c.data.dataset == "tanganke/gtsrb"
