"""Push a release to a local Hub-API server through huggingface_hub's real client, then load it back.

The library is given the server's client (`hub.api()`); the scripts, run in-process, build their own from
huggingface_hub's globals, which `fake_hub` points at the server (tests/hub_server.py).
"""

import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from tl_hub import Predictor
from tl_hub.errors import TLHubError
from tl_hub.release.files import RELEASE_FILES
from tl_hub.release.load import from_pretrained
from tl_hub.release.publish import PushTarget, push_to_hub

from .conftest import ROOT, run_entry_point
from .hub_server import FakeHub

PUSH = ROOT / "scripts" / "push.py"


def run_push(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str, str]:
    return run_entry_point(PUSH, args, monkeypatch, capsys)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def run_dir(release: Path, tmp_path: Path) -> Path:
    """A run directory: the release under model/, plus resume state that must never be pushed."""
    run = tmp_path / "run"
    shutil.copytree(release, run / "model")
    (run / "checkpoints" / "epoch_003").mkdir(parents=True)
    (run / "checkpoints" / "epoch_003" / "optimizer.bin").write_bytes(b"resume state")
    (run / "run_config.json").write_text("{}")
    return run


def test_push_uploads_the_release_only_and_loads_back_identically(
    fake_hub: FakeHub, run_dir: Path, monkeypatch, capsys
) -> None:
    code, out, _ = run_push([str(run_dir), "tester/lenet-gtsrb"], monkeypatch, capsys)
    assert code == 0
    assert out.strip() == f"{fake_hub.url}/tester/lenet-gtsrb"
    head = fake_hub.repos["tester/lenet-gtsrb"].head
    assert sorted(set(head.files) - {".gitattributes"}) == sorted(RELEASE_FILES)
    metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    assert head.message == f"Upload lenet-gtsrb model: test accuracy {metrics['test']['accuracy']:.4f}"
    assert head.files["model.safetensors"] == (run_dir / "model" / "model.safetensors").read_bytes()

    # A fresh cache (the fixture's), the repo id only: the same logits as the local release.
    hub_predictor = Predictor.from_pretrained("tester/lenet-gtsrb")
    local_predictor = Predictor.from_pretrained(run_dir / "model")
    images = [torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy() for _ in range(4)]
    assert torch.equal(hub_predictor.logits(images), local_predictor.logits(images))
    assert hub_predictor.label_names == local_predictor.label_names
    assert torch.equal(
        from_pretrained("tester/lenet-gtsrb", expected_architecture="lenet5")[0].fc.weight,
        from_pretrained(str(run_dir / "model"), expected_architecture="lenet5")[0].fc.weight,
    )


def test_the_pushed_model_card_names_the_repo_and_holds_the_metrics(
    hub: FakeHub, release: Path, tmp_path: Path
) -> None:
    api = hub.api()
    push_to_hub(release, PushTarget("tester/signs"), api=api)
    card = ModelCard.load(api.hf_hub_download("tester/signs", "README.md", cache_dir=tmp_path))
    assert 'Predictor.from_pretrained("tester/signs")' in card.text
    assert card.data.model_name == "tester/signs"
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    metrics = json.loads((release / "metrics.json").read_text())
    assert results[("test", "accuracy")] == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)
    assert results[("test", "f1")] == pytest.approx(metrics["test"]["macro_f1"], abs=1e-4)
    # The local card still loads the local release (by no path of this machine); pushing did not rewrite it.
    local = (release / "README.md").read_text()
    assert 'Predictor.from_pretrained("OUTPUT_DIR/model")' in local and str(release) not in local


def test_a_failed_push_keeps_the_run_and_says_how_to_retry(
    fake_hub: FakeHub, run_dir: Path, monkeypatch, capsys
) -> None:
    before = digest(run_dir / "model")
    fake_hub.fail_next(500)
    code, _, err = run_push([str(run_dir), "tester/flaky"], monkeypatch, capsys)
    assert code == 2
    assert "push to 'tester/flaky' failed" in err
    assert f"retry with `python scripts/push.py {run_dir / 'model'} tester/flaky`" in err
    assert "Traceback" not in err
    assert digest(run_dir / "model") == before and (run_dir / "checkpoints" / "epoch_003").is_dir()
    code, _, _ = run_push([str(run_dir), "tester/flaky"], monkeypatch, capsys)
    assert code == 0 and "model.safetensors" in fake_hub.repos["tester/flaky"].head.files


def test_push_without_a_token_says_where_tokens_come_from(
    fake_hub: FakeHub, release: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    code, _, err = run_push([str(release), "tester/x"], monkeypatch, capsys)
    assert (
        code == 2 and "no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --hub-token" in err
    )
    assert "tester/x" not in fake_hub.repos


def test_a_rejected_token_fails_cleanly(fake_hub: FakeHub, release: Path, monkeypatch, capsys) -> None:
    code, _, err = run_push([str(release), "tester/x", "--hub-token", "hf_wrong"], monkeypatch, capsys)
    assert code == 2 and "push to 'tester/x' failed" in err and "Traceback" not in err


def test_private_repos_are_private(hub: FakeHub, release: Path) -> None:
    push_to_hub(release, PushTarget("tester/secret", private=True), api=hub.api())
    assert hub.repos["tester/secret"].private
    with pytest.raises(TLHubError, match=r"cannot load config.json from 'tester/secret'"):
        Predictor.from_pretrained("tester/secret", api=hub.api(token=False))


def test_loading_a_mismatched_repo_is_refused_with_what_differs(
    hub: FakeHub, release: Path, tmp_path: Path
) -> None:
    api = hub.api()
    push_to_hub(release, PushTarget("tester/mixed-up"), api=api)
    config = json.loads((release / "config.json").read_text())
    config["num_classes"], config["label_names"] = 2, ["a", "b"]
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(config))
    api.upload_file(path_or_fileobj=str(bad), path_in_repo="config.json", repo_id="tester/mixed-up")
    with pytest.raises(
        TLHubError, match=r"shape mismatch \(file vs model\): fc.weight \(43, 84\) vs \(2, 84\)"
    ):
        from_pretrained("tester/mixed-up", api=api)


def test_the_weights_come_from_the_commit_the_config_came_from(
    hub: FakeHub, release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push that lands between from_pretrained's two downloads does not pair one commit's config.json
    with another commit's weights."""
    from safetensors.torch import load_file, save_file

    from tl_hub.release import load

    api = hub.api()
    push_to_hub(release, PushTarget("tester/moving"), api=api)
    first = hub.repos["tester/moving"].head.sha
    newer = tmp_path / "model.safetensors"
    state = load_file(release / "model.safetensors")
    save_file({**state, "fc.weight": torch.ones_like(state["fc.weight"])}, newer)
    build = load.model_from_config

    def build_while_a_push_lands(config):
        api.upload_file(path_or_fileobj=str(newer), path_in_repo="model.safetensors", repo_id="tester/moving")
        return build(config)

    monkeypatch.setattr(load, "model_from_config", build_while_a_push_lands)
    model, _ = from_pretrained("tester/moving", api=api)
    assert hub.repos["tester/moving"].head.sha != first  # the push landed, mid-load
    assert torch.equal(model.fc.weight, state["fc.weight"])  # the first commit's weights, with its config
    monkeypatch.setattr(load, "model_from_config", build)
    assert torch.equal(
        from_pretrained("tester/moving", api=api)[0].fc.weight, torch.ones_like(state["fc.weight"])
    )


def test_missing_repo_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(TLHubError, match=r"cannot load config.json from 'tester/nothing-here'"):
        Predictor.from_pretrained("tester/nothing-here", api=hub.api())


@pytest.mark.slow
def test_train_push_to_hub_end_to_end(fake_hub: FakeHub, tmp_path: Path, monkeypatch, capsys) -> None:
    script = ROOT / "scripts" / "train.py"
    args = ["--dataset", "synthetic", "--synthetic-per-class", "4", "--epochs", "1", "--batch-size", "43"]
    monkeypatch.setattr(
        sys,
        "argv",
        [
            str(script),
            *args,
            "--output-dir",
            str(tmp_path / "run"),
            "--push-to-hub",
            "--hub-model-id",
            "tester/trained",
        ],
    )
    runpy.run_path(str(script), run_name="__main__")
    head = fake_hub.repos["tester/trained"].head
    assert head.message.startswith("Upload lenet-gtsrb model: test accuracy ")
    assert head.files["config.json"] == (tmp_path / "run" / "model" / "config.json").read_bytes()


@pytest.mark.slow
def test_a_release_over_ten_megabytes_goes_the_lfs_way_and_loads_back(hub: FakeHub, tmp_path: Path) -> None:
    """An EfficientNet-Lite0 release (19 MB of weights) takes the path a real push takes: preupload says
    `lfs`, the LFS batch endpoint hands out an upload, the commit names the object by its sha256."""
    from tl_hub.models.registry import create_model
    from tl_hub.recipes import get_recipe

    from .conftest import write_fake_release

    run = get_recipe("timm-finetune").config
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=2, in_chans=3, img_size=224, drop_rate=0.0)
    release = write_fake_release(tmp_path / "run" / "model", model, run, ["cat", "dog"])
    weights = (release / "model.safetensors").read_bytes()
    assert len(weights) > hub.lfs_threshold
    api = hub.api()
    push_to_hub(release, PushTarget("tester/lite0"), api=api)
    head = hub.repos["tester/lite0"].head
    assert head.lfs == {"model.safetensors"}  # and only it: the card and JSON files are small
    assert hub.lfs_uploads == [hashlib.sha256(weights).hexdigest()]
    assert ("POST", "/tester/lite0.git/info/lfs/objects/batch") in hub.requests
    downloaded = api.hf_hub_download("tester/lite0", "model.safetensors", cache_dir=tmp_path / "cache")
    assert Path(downloaded).read_bytes() == weights
    images = [torch.randint(0, 256, (64, 64, 3), dtype=torch.uint8).numpy() for _ in range(2)]
    assert torch.equal(
        Predictor.from_pretrained("tester/lite0", api=api).logits(images),
        Predictor.from_pretrained(release).logits(images),
    )
    # Pushing the same weights again uploads nothing new: the Hub already holds the object.
    push_to_hub(release, PushTarget("tester/lite0-again"), api=api)
    assert len(hub.lfs_uploads) == 1 and hub.repos["tester/lite0-again"].head.lfs == {"model.safetensors"}


@pytest.mark.slow
def test_push_logs_no_line_per_http_request(hub: FakeHub, release: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(PUSH), str(release), "tester/quiet"],
        env={**os.environ, **hub.environ()},  # read by huggingface_hub at import, in the subprocess
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tester/quiet" in hub.repos and "HTTP Request" not in result.stdout + result.stderr
