import pytest

from tl_hub.config import AugConfig, DataConfig, PreprocessConfig, RunConfig, TrainConfig, TransferConfig
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
        (lambda: DataConfig(train_size=0), "train_size=0 is invalid"),
        (
            lambda: DataConfig(train_sample="random"),
            "train_sample='random' is invalid: expected one of balanced",
        ),
        (
            lambda: PreprocessConfig(equalize="yes"),
            "equalize='yes' is invalid: expected one of none, global, clahe",
        ),
        (lambda: PreprocessConfig(grayscale=True, mean=(0.5, 0.5, 0.5)), "mean=.* expected 1 values"),
        (
            lambda: TrainConfig(epochs=10**23),
            r"epochs=10+ is invalid: expected a positive integer \(at most 10,000\)",
        ),
        (lambda: TrainConfig(batch_size=2**20), r"batch_size=1048576 is invalid: .*\(at most 65,536\)"),
        (
            lambda: TrainConfig(weight_decay=float("inf")),
            "weight_decay=inf is invalid: expected a non-negative",
        ),
        (lambda: DataConfig(val_size=10**11), r"val_size=100000000000 is invalid: .*at most 10,000,000,000"),
        (lambda: DataConfig(synthetic_per_class=10**6), r"synthetic_per_class=1000000 .*at most 20,000"),
        (
            lambda: TransferConfig(head_epochs=2.5),
            r"head_epochs=2.5 is invalid: expected a non-negative integer",
        ),
        (lambda: TransferConfig(head_epochs=10**6), "head_epochs=1000000 is invalid"),
        (
            lambda: TransferConfig(cache_views=65),
            r"cache_views=65 is invalid: expected 0 or more \(at most 64\)",
        ),
        (lambda: PreprocessConfig(mean=(0.5, float("nan"), 0.5)), "mean=.* expected finite values"),
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
    import json

    config = RECIPES[name].config
    assert RunConfig.from_dict(config.to_dict()) == config
    # ... and through JSON (run_config.json, config.json), where tuples come back as lists
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_lenet_gtsrb_holds_the_study_protocol() -> None:
    c = get_recipe("lenet-gtsrb").config
    assert (c.train.optimizer, c.train.lr, c.train.batch_size, c.train.epochs) == ("adam", 1e-3, 128, 20)
    assert c.model.drop_rate == pytest.approx(0.3)  # keep probability 0.7
    assert (c.preprocess.input_size, c.preprocess.grayscale, c.preprocess.equalize) == (32, True, "clahe")
    assert c.aug.rotation == 15 and c.aug.blur_prob > 0 and not c.aug.hflip
    assert c.data.dataset == "tanganke/gtsrb"
