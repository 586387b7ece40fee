"""Every release a user can train: every recipe, strategy and start, read as a Hub user reads the release.

Each combination goes through the command line's parser (as `scripts/train.py` parses it) and the functions
the trainer releases with (start weights, the recipe's prose, the facts, the public config); the card is
rendered from the release's own files. The weights file holds a small stand-in network: no card reads the
weights, and a VGG16 per combination would write gigabytes. `tests/test_e2e.py` trains such releases for real.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from tl_hub.errors import ConfigError
from tl_hub.recipes import RECIPES

from .conftest import write_fake_release

STRATEGIES = ("scratch", "feature-extract", "finetune-top", "finetune-all")
# A directory name no card, config or record may repeat: the path of the machine that trained the release.
MACHINE_DIR = "a-directory-of-the-training-machine-" + "x" * 40
STARTS_ARGS = {
    "recipe's": [],
    "file": ["--pretrained-file", f"{{tmp}}/{MACHINE_DIR}/weights/base.safetensors"],
    "timm model": ["--model", "resnet18"],
    "local-dir model": ["--model", f"local-dir:{{tmp}}/{MACHINE_DIR}/lite0"],
}
STARTS = list(STARTS_ARGS)
TIMM_ARCHITECTURES = {"vgg16", "efficientnet_lite0", "resnet18"}


def parse(argv: list[str]):
    import runpy

    from tl_hub.cli import run_config_from_args

    module = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "train.py"))
    return run_config_from_args(module["parse_args"](argv))


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory holding a weights file and a timm local-dir model under a long machine path."""
    import timm
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("sweep")
    weights = tmp / MACHINE_DIR / "weights"
    weights.mkdir(parents=True)
    save_file({"features.0.weight": __import__("torch").zeros(1)}, weights / "base.safetensors")
    lite0 = tmp / MACHINE_DIR / "lite0"
    lite0.mkdir()
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    (lite0 / "config.json").write_text(
        json.dumps({"architecture": "efficientnet_lite0", "num_classes": 1000, "pretrained_cfg": {}})
    )
    save_file(model.state_dict(), lite0 / "model.safetensors")
    return tmp


# Every recipe from its own start and from a file; any timm model (--model) through timm-finetune, the recipe
# `--model` belongs to (the others refuse it in one line).
CASES = [
    *(
        (recipe, strategy, start)
        for recipe in sorted(RECIPES)
        for strategy in STRATEGIES
        for start in STARTS[:2]
    ),
    *(("timm-finetune", strategy, start) for strategy in STRATEGIES for start in STARTS[2:]),
]


@pytest.mark.parametrize(("recipe", "strategy", "start"), CASES)
def test_every_release_renders_a_true_card_from_its_own_files(
    recipe: str, strategy: str, start: str, machine: Path, tmp_path: Path
) -> None:
    from tl_hub import LeNet5
    from tl_hub.data.naming import dataset_name

    argv = ["--recipe", recipe, "--strategy", strategy, *(a.format(tmp=machine) for a in STARTS_ARGS[start])]
    if start in ("timm model", "local-dir model"):
        argv += ["--dataset", "synthetic"]  # the others keep the recipe's own data (nothing is downloaded)
    try:
        run = parse(argv)
    except ConfigError as e:  # a combination the command line refuses in one line is no release
        assert "\n" not in str(e)
        return
    label_names = [f"class {i}" for i in range(3)]
    release = write_fake_release(tmp_path / "run" / "model", LeNet5(num_classes=3), run, label_names)

    # No path of this machine in any file of the release.
    for path in release.iterdir():
        if path.suffix in (".md", ".json"):
            text = path.read_text()
            assert MACHINE_DIR not in text and str(tmp_path) not in text, path.name

    facts = json.loads((release / "facts.json").read_text())
    card = ModelCard.load(release / "README.md")
    # The metadata round-trips through huggingface_hub's own parsers.
    assert metadata_load(release / "README.md") == card.data.to_dict()
    architecture = run.model.architecture
    assert card.data.library_name == ("timm" if architecture in TIMM_ARCHITECTURES else "tl_hub")
    if card.data.library_name == "timm":
        assert "timm" in card.data.tags and "timm.create_model(" in card.text
    results = {(r.dataset_split, r.metric_type) for r in card.data.eval_results}
    assert {("validation", "accuracy"), ("validation", "f1")} <= results
    assert {r.metric_args["average"] for r in card.data.eval_results if r.metric_type == "f1"} == {"macro"}

    # The initial weights line tells the truth.
    row = next(line for line in card.text.splitlines() if line.startswith("| initial weights |"))
    if strategy == "scratch" or (run.model.pretrained is None and run.transfer.init_from is None):
        assert facts["start"]["kind"] == "random" and "random weights" in row
        assert getattr(card.data, "base_model", None) is None
    elif start == "file":
        digest = hashlib.sha256(
            (machine / MACHINE_DIR / "weights" / "base.safetensors").read_bytes()
        ).hexdigest()
        assert facts["start"] == {
            **facts["start"],
            "kind": "file",
            "name": "base.safetensors",
            "sha256": digest,
        }
        assert "base.safetensors" in row and digest[:16] in row
    elif start == "local-dir model":
        assert facts["start"]["kind"] == "file" and "local-dir:lite0" in row
    else:
        assert facts["start"]["kind"] == "pretrained" and run.model.pretrained in row
    # A study figure stands beside this model's only when the run follows the study's protocol.
    own = RECIPES[recipe]
    follows = (
        strategy == own.config.transfer.strategy
        and architecture == own.config.model.architecture
        and (run.model.pretrained is None) == (own.config.model.pretrained is None)
        and dataset_name(run.data) == dataset_name(own.config.data)
        and run.train.epochs == own.config.train.epochs
    )
    has_study = "| Study |" in card.text
    assert has_study == (follows and bool(own.study_results)), (has_study, follows)
    if not follows:
        assert own.description not in card.text
    # The snippet classifies what the task classifies.
    example = facts["recipe"]["example"]
    assert f'predictor("{example}"' in card.text
    if dataset_name(run.data) == dataset_name(own.config.data):
        assert example == ("sign.png" if "traffic-signs" in own.tags else "photo.jpg")
