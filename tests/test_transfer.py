"""Transfer strategies, pretrained and release starts, and the bottleneck-feature cache."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import tl_hub.training.features as features_module
from tl_hub.config import AugConfig, PreprocessConfig, TransferConfig
from tl_hub.data.splits import balanced_sample
from tl_hub.errors import TLHubError
from tl_hub.models import create_model, get_architecture
from tl_hub.training.features import cached_features
from tl_hub.training.strategies import TransferPlan
from tl_hub.training.weights import init_from_release, load_pretrained_base

SMALL = PreprocessConfig(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def step(model: torch.nn.Module, plan: TransferPlan, epoch: int, in_chans: int) -> dict[str, torch.Tensor]:
    """One SGD step in `epoch`; returns the parameters from before it."""
    plan.start_epoch(model, epoch)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(plan.groups, lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    loss = F.cross_entropy(model(torch.randn(4, in_chans, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    return before


@pytest.mark.parametrize(
    ("architecture", "strategy", "epoch", "trains", "base_mode"),
    [
        ("lenet5", "scratch", 1, {"features.0", "features.3", "pre_logits", "fc"}, True),
        ("lenet5", "finetune-all", 1, {"features.0", "features.3", "pre_logits", "fc"}, True),
        ("lenet5", "feature-extract", 1, {"pre_logits", "fc"}, False),
        ("lenet5", "finetune-top", 1, {"pre_logits", "fc"}, False),  # head-only warm-up
        ("lenet5", "finetune-top", 3, {"features.3", "pre_logits", "fc"}, None),
        ("vgg16", "feature-extract", 1, {"pre_logits.fc1", "head.fc"}, False),
        (
            "vgg16",
            "finetune-top",
            3,
            {"features.24", "features.26", "features.28", "pre_logits.fc1", "head.fc"},
            None,
        ),
    ],
)
def test_frozen_tensors_stay_bit_identical_and_trainable_ones_move(
    architecture: str, strategy: str, epoch: int, trains: set[str], base_mode: bool | None
) -> None:
    in_chans = 1 if architecture == "lenet5" else 3
    torch.manual_seed(0)
    model = create_model(architecture, num_classes=2, in_chans=in_chans, img_size=32, drop_rate=0.5)
    base = get_architecture(architecture).base
    plan = TransferPlan(model, base, TransferConfig(strategy=strategy, head_epochs=2), lr=0.1)
    before = step(model, plan, epoch, in_chans)
    for name, p in model.named_parameters():
        if any(name.startswith(prefix + ".") for prefix in trains):
            assert not torch.equal(p, before[name]), f"{name} should have trained"
        else:
            assert torch.equal(p, before[name]), f"{name} should be frozen"
    if base_mode is not None:
        assert all(m.training == base_mode for m in model.features)
    if strategy == "finetune-top" and epoch > 2:  # the last block trains, the blocks below stay in eval mode
        start = 3 if architecture == "lenet5" else 24
        assert all(m.training for m in list(model.features)[start:])
        assert not any(m.training for m in list(model.features)[:start])
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)  # the head's dropout is on while it trains


def test_finetune_top_puts_the_last_block_at_a_lower_learning_rate() -> None:
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    plan = TransferPlan(model, "features", TransferConfig(strategy="finetune-top", top_lr_scale=0.1), lr=1e-3)
    assert [g["lr"] for g in plan.groups] == [1e-3, pytest.approx(1e-4)]
    assert not any(p is model.pre_logits.fc2.weight for g in plan.groups for p in g["params"])


def test_balanced_sample_is_seeded_and_balanced() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 4)
    idx = balanced_sample(labels, 30, seed=1)
    assert len(idx) == 30 and np.array_equal(idx, balanced_sample(labels, 30, seed=1))
    assert np.bincount(labels[idx]).tolist() == [13, 13, 4]  # class 2 has 4: the others make up the rest
    assert not np.array_equal(idx, balanced_sample(labels, 30, seed=2))


def test_pretrained_file_loads_the_base_from_a_torchvision_state_dict(tmp_path: Path) -> None:
    donor = create_model("vgg16", num_classes=1000, in_chans=3, img_size=32, drop_rate=0.0)
    state = {k: v for k, v in donor.state_dict().items() if k.startswith("features.")}
    state["classifier.6.weight"] = torch.zeros(1000, 4096)  # torchvision's head: ignored
    torch.save(state, tmp_path / "vgg16.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "vgg16.safetensors")
    for name in ("vgg16.pth", "vgg16.safetensors"):
        model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
        load_pretrained_base(model, str(tmp_path / name), "features")
        assert all(
            torch.equal(model.features.state_dict()[k], v) for k, v in donor.features.state_dict().items()
        )


def test_pretrained_file_problems_are_named(tmp_path: Path) -> None:
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    lenet = create_model("lenet5", num_classes=2, in_chans=3, img_size=32, drop_rate=0.0)
    save_file({k: v.contiguous() for k, v in lenet.state_dict().items()}, tmp_path / "lenet.safetensors")
    with pytest.raises(TLHubError, match="do not fit Sequential: missing tensors"):
        load_pretrained_base(model, str(tmp_path / "lenet.safetensors"), "features")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TLHubError, match=r"cannot read weights file .*junk.pth"):
        load_pretrained_base(model, str(tmp_path / "junk.pth"), "features")
    with pytest.raises(TLHubError, match=r"--pretrained-file .*missing.pth' does not exist"):
        load_pretrained_base(model, str(tmp_path / "missing.pth"), "features")


def test_offline_without_weights_says_how_to_provide_them() -> None:
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    with pytest.raises(TLHubError, match=r"pass --pretrained-file PATH .* or --no-pretrained"):
        load_pretrained_base(model, "vgg16.tv_in1k", "features")


def test_init_from_a_release_replaces_the_classifier_when_labels_differ(release: Path) -> None:
    model = create_model("lenet5", num_classes=5, in_chans=1, img_size=32, drop_rate=0.3)
    fresh_fc = model.fc.weight.detach().clone()
    init_from_release(model, "lenet5", str(release), [f"class {i}" for i in range(5)])
    donor = create_model("lenet5", num_classes=43, in_chans=1, img_size=32, drop_rate=0.3)
    donor.load_state_dict(__import__("safetensors.torch").torch.load_file(release / "model.safetensors"))
    assert torch.equal(model.features[0].weight, donor.features[0].weight)
    assert torch.equal(model.pre_logits[4].weight, donor.pre_logits[4].weight)
    assert torch.equal(model.fc.weight, fresh_fc) and model.fc.out_features == 5
    with pytest.raises(TLHubError, match="is a lenet5 model; this recipe trains vgg16"):
        init_from_release(create_model("vgg16", 2, 3, 32, 0.5), "vgg16", str(release), ["a", "b"])


def test_feature_cache_hits_on_rerun_and_misses_when_weights_or_preprocessing_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TL_HUB_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO)
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=2, in_chans=3, img_size=32, drop_rate=0.0)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(10) % 2
    cpu = torch.device("cpu")
    first, _ = cached_features(model, images, labels, SMALL, cpu, frozen=model.features.state_dict())
    assert first.shape == (10, 16, 5, 5)

    calls = []
    real_extract = features_module.extract
    monkeypatch.setattr(features_module, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    again, _ = cached_features(model, images, labels, SMALL, cpu, frozen=model.features.state_dict())
    assert calls == [] and torch.equal(again, first) and "feature cache hit" in caplog.text

    cached_features(
        model,
        images,
        labels,
        PreprocessConfig(input_size=32, mean=(0.4,) * 3, std=(0.25,) * 3),
        cpu,
        frozen=model.features.state_dict(),
    )
    assert len(calls) == 1  # other preprocessing: recomputed
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] += 1.0
    changed, _ = cached_features(model, images, labels, SMALL, cpu, frozen=model.features.state_dict())
    assert len(calls) == 2 and not torch.equal(changed, first)  # other weights: recomputed
    views, view_labels = cached_features(
        model,
        images,
        labels,
        SMALL,
        cpu,
        frozen=model.features.state_dict(),
        views=3,
        aug=AugConfig(rotation=10),
    )
    assert views.shape[0] == 30 and torch.equal(view_labels, labels.repeat(3))
    assert len(list(tmp_path.glob("features/*.safetensors"))) == 4


def test_a_new_strategy_is_one_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """LP-FT (the head alone, then every layer at a lower rate) as one entry of the strategy table: the
    plan's trainable sets, optimizer groups, unfreezing epoch and checkpoint skips follow from it alone."""
    import tl_hub.strategies as strategies
    from tl_hub.strategies import Stage, Strategy

    lp_ft = Strategy(
        "lp-ft",
        "a new head trained alone, then every layer fine-tuned with it",
        (Stage(("head",)), Stage(("top", "rest"), lr_scale="base_lr_scale", after="head_epochs")),
    )
    monkeypatch.setitem(strategies.STRATEGIES, "lp-ft", lp_ft)
    monkeypatch.setattr("tl_hub.config.STRATEGIES", (*strategies.STRATEGY_NAMES, "lp-ft"))
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    cfg = TransferConfig(strategy="lp-ft", head_epochs=2, base_lr_scale=0.1)
    plan = TransferPlan(model, "features", cfg, lr=1e-3)
    head = {id(p) for p in plan.head}
    assert {id(p) for p in model.get_classifier().parameters()} <= head
    assert [g["lr"] for g in plan.groups] == [1e-3, pytest.approx(1e-4)] and plan.group_names == [
        "head",
        "base",
    ]
    assert {id(p) for p in plan.trainable(2)} == head
    everything = {id(p) for p in plan.head + plan.top + plan.rest}
    assert plan.top and plan.rest
    assert {id(p) for p in plan.trainable(3)} == everything
    assert [e for e in range(1, 6) if plan.unfreezes(e)] == [3]
    assert plan.never_trained() == plan.fixed
    assert not cfg.spec.caches_features and cfg.spec.pretrained


@pytest.mark.parametrize(
    ("strategy", "names", "scales"),
    [
        ("scratch", ["all"], [1.0]),
        ("feature-extract", ["head"], [1.0]),
        ("finetune-top", ["head", "top"], [1.0, 0.1]),
        ("finetune-all", ["all"], [1.0]),
    ],
)
def test_each_strategys_optimizer_groups(strategy: str, names: list[str], scales: list[float]) -> None:
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    plan = TransferPlan(model, "features", TransferConfig(strategy=strategy), lr=1.0)
    assert plan.group_names == names and [g["lr"] for g in plan.groups] == pytest.approx(scales)
    grouped = [id(p) for g in plan.groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))  # no parameter in two groups


@pytest.mark.parametrize(
    ("strategy", "fields", "words"),
    [
        ("scratch", {}, "every layer from epoch 1 at lr 0.001"),
        ("feature-extract", {}, "the head from epoch 1 at lr 0.001"),
        (
            "finetune-top",
            {"head_epochs": 5, "top_lr_scale": 0.1},
            "the head from epoch 1 at lr 0.001; the base's last stage from epoch 6 at lr 0.0001",
        ),
        (
            "finetune-top",
            {"head_epochs": 8},
            "the head from epoch 1 at lr 0.001; "
            "the base's last stage not within the 8 epochs (head_epochs 8)",
        ),
        (
            "finetune-all",
            {"base_lr_scale": 0.5},
            "the head from epoch 1 at lr 0.001; the whole base from epoch 1 at lr 0.0005",
        ),
    ],
)
def test_the_schedule_in_words_is_what_the_plan_trains(strategy: str, fields: dict, words: str) -> None:
    cfg = TransferConfig(strategy=strategy, **fields)
    assert cfg.schedule(1e-3, 8) == words
    # ... and the plan trains that: the groups' learning rates and the epoch at which each joins
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    plan = TransferPlan(model, "features", cfg, lr=1e-3)
    for stage in cfg.spec.stages:
        start = plan.first_epoch(stage)
        assert f"from epoch {start} at lr {1e-3 * stage.scale(cfg):g}" in words or start > 8
        params = {id(p) for g in stage.groups for p in plan.params[g]}
        if start <= 8:
            assert params <= {id(p) for p in plan.trainable(start)}
        if start > 1:
            assert not params & {id(p) for p in plan.trainable(start - 1)}


def test_a_config_written_with_warmup_epochs_loads_as_head_epochs(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from tl_hub.config import RunConfig
    from tl_hub.recipes import get_recipe

    d = dataclasses.asdict(get_recipe("timm-finetune").config)
    d["transfer"]["warmup_epochs"] = d["transfer"].pop("head_epochs") + 2
    with caplog.at_level(logging.WARNING):
        run = RunConfig.from_dict(d)
    assert run.transfer.head_epochs == 3
    assert "warmup_epochs is now called head_epochs" in caplog.text


def test_extraction_in_cpu_chunks_gives_the_batchs_features() -> None:
    """On a CPU the base runs on a few images at a time (cache-sized activations); the features are the
    ones a whole batch gives, within float rounding, and in the same order."""
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=32, drop_rate=0.5)
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    pre = PreprocessConfig(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    cpu = torch.device("cpu")
    whole = features_module.extract(model, images, pre, cpu, chunk=64)
    default = features_module.extract(model, images, pre, cpu)  # features_module.CPU_CHUNK at a time
    single = features_module.extract(model, images, pre, cpu, chunk=1)
    assert len(images) > features_module.CPU_CHUNK and whole.shape == (7, 512, 1, 1)
    assert torch.allclose(default, whole, rtol=1e-4, atol=1e-5)
    assert torch.allclose(single, whole, rtol=1e-4, atol=1e-5)
