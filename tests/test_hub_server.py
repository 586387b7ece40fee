"""The fake Hub against huggingface_hub's real client: push, download, errors, injected failures."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    RepoUrl,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from PIL import Image

from tests.hub_server import FakeHub  # the hub and fake_hub fixtures come from conftest.py

REPO = "tester/lenet-gtsrb"


def png_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def release_files(tmp_path: Path) -> dict[str, bytes]:
    """The files written to tmp_path/release, next to a resume_state.pt that pushes must leave out."""
    files = {
        "model.safetensors": random.Random(0).randbytes(300_000),
        "config.json": json.dumps({"architecture": "lenet5", "num_classes": 43}).encode(),
        "README.md": b"---\nlicense: apache-2.0\n---\n# LeNet-5\n",
        "examples/stop.png": png_bytes(1),
    }
    folder = tmp_path / "release"
    for name, data in {**files, "resume_state.pt": b"optimizer state"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def push_release(
    api: HfApi, tmp_path: Path, message: str = "Upload lenet5 model"
) -> huggingface_hub.CommitInfo:
    return api.upload_folder(
        repo_id=REPO,
        folder_path=tmp_path / "release",
        allow_patterns=["*.safetensors", "*.json", "*.md", "examples/*"],
        commit_message=message,
    )


def test_push_then_download_round_trip(hub: FakeHub, release_files: dict[str, bytes], tmp_path: Path) -> None:
    api = hub.api()
    url = api.create_repo(REPO, repo_type="model", private=False, exist_ok=True)
    assert isinstance(url, RepoUrl)
    assert (str(url), url.repo_id) == (f"{hub.url}/{REPO}", REPO)

    info = push_release(api, tmp_path)

    head = hub.repos[REPO].commits[-1]
    assert info.oid == head.sha
    assert info.repo_url.repo_id == REPO
    assert [c.message for c in hub.repos[REPO].commits] == ["initial commit", "Upload lenet5 model"]
    assert head.files == {
        **release_files,
        ".gitattributes": head.files[".gitattributes"],
    }  # no resume_state.pt
    weights = api.hf_hub_download(REPO, "model.safetensors", cache_dir=tmp_path / "cache1")
    assert Path(weights).read_bytes() == release_files["model.safetensors"]
    picture = api.hf_hub_download(REPO, "examples/stop.png", cache_dir=tmp_path / "cache1")
    assert Path(picture).read_bytes() == release_files["examples/stop.png"]

    snapshot = Path(api.snapshot_download(REPO, cache_dir=tmp_path / "cache2"))
    downloaded = {p.relative_to(snapshot).as_posix(): p.read_bytes() for p in snapshot.rglob("*.*")}
    assert downloaded == head.files
    assert snapshot.name == head.sha
    only_json = Path(api.snapshot_download(REPO, cache_dir=tmp_path / "cache3", allow_patterns="*.json"))
    assert [p.name for p in only_json.rglob("*") if p.is_file()] == ["config.json"]

    assert sorted(api.list_repo_files(REPO)) == sorted(head.files)
    model = api.model_info(REPO, files_metadata=True)
    assert (model.id, model.sha, model.private) == (REPO, head.sha, False)
    sizes = {s.rfilename: s.size for s in model.siblings}
    assert sizes["model.safetensors"] == 300_000
    assert api.file_exists(REPO, "config.json") and not api.file_exists(REPO, "resume_state.pt")
    assert not any("lfs" in path or "xet" in path for _, path in hub.requests)


def test_upload_file_commit_operations_and_unchanged_files(hub: FakeHub, tmp_path: Path) -> None:
    api = hub.api()
    api.create_repo(REPO)
    picture = png_bytes(2)
    api.upload_file(path_or_fileobj=picture, path_in_repo="a.png", repo_id=REPO, commit_message="Add a.png")
    assert hub.repos[REPO].commits[-1].files["a.png"] == picture

    api.upload_file(path_or_fileobj=picture, path_in_repo="a.png", repo_id=REPO, commit_message="Same again")
    assert hub.repos[REPO].commits[-1].message == "Add a.png"  # unchanged: the client skips the commit

    api.create_commit(
        REPO,
        [CommitOperationAdd("b.txt", b"b"), CommitOperationDelete("a.png")],
        commit_message="Replace a.png",
        commit_description="details",
    )
    head = hub.repos[REPO].commits[-1]
    assert (head.message, head.description, sorted(head.files)) == (
        "Replace a.png",
        "details",
        [".gitattributes", "b.txt"],
    )
    old = hub.repos[REPO].commits[-2].sha
    assert Path(api.hf_hub_download(REPO, "a.png", revision=old, cache_dir=tmp_path)).read_bytes() == picture
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit(REPO, [CommitOperationAdd("c", b"c")], commit_message="Stale", parent_commit=old)
    assert error.value.response.status_code == 412


def test_create_repo_twice(hub: FakeHub) -> None:
    api = hub.api()
    first = api.create_repo(REPO)
    assert api.create_repo(REPO, exist_ok=True) == first
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(REPO)
    assert error.value.response.status_code == 409
    assert len(hub.repos[REPO].commits) == 1


def test_private_repo_needs_the_token(hub: FakeHub, release_files: dict[str, bytes], tmp_path: Path) -> None:
    api = hub.api()
    api.create_repo(REPO, private=True)
    push_release(api, tmp_path)
    assert hub.repos[REPO].private

    anonymous = hub.api(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(REPO)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "anonymous")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.snapshot_download(REPO, cache_dir=tmp_path / "anonymous")

    path = api.hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "with-token")
    assert Path(path).read_bytes() == release_files["config.json"]


def test_missing_repo_file_and_revision(hub: FakeHub, tmp_path: Path) -> None:
    api = hub.api()
    api.create_repo(REPO)
    with pytest.raises(RemoteEntryNotFoundError) as error:
        api.hf_hub_download(REPO, "model.safetensors", cache_dir=tmp_path)
    assert isinstance(error.value, EntryNotFoundError)
    with pytest.raises(RepositoryNotFoundError):
        api.hf_hub_download("tester/nothing-here", "config.json", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("tester/nothing-here")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="v1.0")


def test_tokens(hub: FakeHub) -> None:
    assert hub.api().whoami()["name"] == "tester"

    wrong = hub.api(token="hf_wrong")
    with pytest.raises(HfHubHTTPError, match="Invalid user token") as error:
        wrong.whoami()
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        wrong.create_repo(REPO)
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        hub.api(token=False).create_repo(REPO)
    assert error.value.response.status_code == 401
    assert hub.repos == {}

    hub.api().create_repo(REPO)
    with pytest.raises(RepositoryNotFoundError) as error:  # the client's reading of a 401 on a repo url
        hub.api(token=False).upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=REPO)
    assert error.value.response.status_code == 401
    assert len(hub.repos[REPO].commits) == 1


def test_fail_next_fails_pushes_then_recovers(
    hub: FakeHub, release_files: dict[str, bytes], tmp_path: Path
) -> None:
    api = hub.api()
    hub.fail_next(503)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(REPO, exist_ok=True)
    assert error.value.response.status_code == 503
    api.create_repo(REPO, exist_ok=True)

    hub.fail_next(500, times=2)
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as error:
            push_release(api, tmp_path)
        assert error.value.response.status_code == 500
    assert len(hub.repos[REPO].commits) == 1

    push_release(api, tmp_path, message="Retry")
    assert hub.repos[REPO].commits[-1].message == "Retry"


def test_upload_folder_through_the_xet_pipeline(
    hub: FakeHub, release_files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With hf_xet enabled, upload_folder streams commits and retries a failed one; files still go inline."""
    pytest.importorskip("hf_xet")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)  # the suite disables Xet (conftest.py)
    api = hub.api()
    api.create_repo(REPO)
    hub.fail_next(500)
    push_release(api, tmp_path)  # the pipeline retries the commit after a second
    commit_url = f"/api/models/{REPO}/commit/main"
    assert hub.requests.count(("POST", commit_url)) == 2
    head = hub.repos[REPO].commits[-1]
    assert (len(hub.repos[REPO].commits), head.message) == (2, "Upload lenet5 model")
    assert head.files["model.safetensors"] == release_files["model.safetensors"]


def test_the_suite_is_offline_and_its_default_endpoint_answers_nothing() -> None:
    """The conftest.py environment: only a test given a FakeHub's client (or `fake_hub`) reaches a Hub."""
    assert constants.HF_HUB_OFFLINE and constants.ENDPOINT == "http://127.0.0.1:9"
    assert constants.HF_HUB_DISABLE_XET and huggingface_hub.get_token() is None
    assert Path(constants.HF_HOME).name.startswith("tl_hub-test-hf-home-")


def test_a_client_without_the_servers_endpoint_does_not_reach_it(hub: FakeHub) -> None:
    hub.api().create_repo(REPO)
    requests = len(hub.requests)
    with pytest.raises(Exception, match="Connection refused"):  # the default endpoint's closed port
        HfApi(token=hub.token).model_info(REPO)
    assert len(hub.requests) == requests


def test_fake_hub_points_huggingface_hubs_globals_at_the_server(
    fake_hub: FakeHub, release_files: dict[str, bytes], tmp_path: Path
) -> None:
    """For code that takes no client: module-level functions, `HfApi()` and `get_token()` reach the server."""
    assert huggingface_hub.get_token() == fake_hub.token
    HfApi().create_repo(REPO)
    push_release(HfApi(), tmp_path)
    head = fake_hub.repos[REPO].head
    assert huggingface_hub.model_info(REPO).sha == head.sha
    weights = hf_hub_download(REPO, "model.safetensors")
    assert Path(weights).read_bytes() == release_files["model.safetensors"]
    assert Path(weights).is_relative_to(tmp_path)  # the test's own cache
    snapshot = Path(snapshot_download(REPO, allow_patterns="*.json"))
    assert (
        snapshot.name == head.sha and (snapshot / "config.json").read_bytes() == release_files["config.json"]
    )
