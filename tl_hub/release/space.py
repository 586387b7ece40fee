"""Deploying the Gradio Space (spaces/) to a Hub Space repo, with the tl_hub package it imports.

A Space runs `app.py` from its repo root, so the package travels as a `tl_hub/` folder beside it, and the
models it serves are Space variables that app.py reads (`TL_HUB_SIGNS_MODEL`, `TL_HUB_PETS_MODEL`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceCard

import tl_hub
from tl_hub.errors import TLHubError
from tl_hub.release.files import CONFIG_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpaceModel:
    """One tab's model, as the Space is told it: a flag (the app's and scripts/deploy_space.py's) and the
    Space variable that deploying sets and the app reads when the flag is not given."""

    tab: str  # "sign" | "pet": the tab, as the app and `tl_hub.inference.serving` name it
    flag: str
    env: str
    what: str  # in the help's words


SPACE_MODELS = (
    SpaceModel("sign", "--signs-model", "TL_HUB_SIGNS_MODEL", "the traffic-sign model"),
    SpaceModel("pet", "--pets-model", "TL_HUB_PETS_MODEL", "the cats & dogs model"),
)
SIGNS_MODEL_ENV, PETS_MODEL_ENV = (m.env for m in SPACE_MODELS)
SPACE_FILES = ("app.py", "requirements.txt", "README.md")
PACKAGE_DIR = "tl_hub"


def space_files(space_dir: Path, models: list[str] | None = None) -> dict[str, bytes]:
    """Every file of the Space repo: the app, its README (front matter `models:` set) and tl_hub's sources."""
    missing = [name for name in SPACE_FILES if not (space_dir / name).is_file()]
    if missing:
        raise TLHubError(f"{str(space_dir)!r} lacks {', '.join(missing)}: pass the repository's spaces/")
    files = {name: (space_dir / name).read_bytes() for name in SPACE_FILES}
    if models:
        card = SpaceCard(files["README.md"].decode())
        card.data.models = models
        files["README.md"] = str(card).encode()
    package = Path(tl_hub.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[f"{PACKAGE_DIR}/{path.relative_to(package).as_posix()}"] = path.read_bytes()
    return files


def _check_model(api: HfApi, token: str, flag: str, repo_id: str) -> None:
    if Path(repo_id).expanduser().exists():
        raise TLHubError(
            f"{flag} {repo_id!r} is a local path, which a Space cannot read: push it with "
            f"`python scripts/push.py {repo_id} USER/NAME` and pass USER/NAME"
        )
    if repo_id.count("/") != 1 or not api.file_exists(repo_id, CONFIG_NAME, token=token):
        raise TLHubError(
            f"{flag} {repo_id!r}: no tl_hub model ({CONFIG_NAME}) in that Hub repo: push one with "
            "`python scripts/push.py RUN_DIR USER/NAME` first"
        )


def deploy_space(
    space_id: str,
    space_dir: str | Path,
    signs_model: str | None = None,
    pets_model: str | None = None,
    private: bool = False,
    token: str | None = None,
    api: HfApi | None = None,
) -> str:
    """Create or update the Gradio Space `space_id` with the app in `space_dir`; returns the Space URL.

    `signs_model` / `pets_model` (Hub repo ids, checked to exist) become the Space's model variables and its
    README's `models:`; left out, the app's defaults stay. tl_hub files the package no longer has are deleted.
    `api`: the Hub client (its endpoint; its token unless `token` is given); None: huggingface_hub's defaults.
    """
    from tl_hub.release.publish import PushTarget, check_can_push

    if space_id.count("/") != 1 or not all(space_id.split("/")):
        raise TLHubError(f"SPACE_ID {space_id!r} is not of the form USER/NAME (or ORG/NAME)")
    token = check_can_push(PushTarget(space_id, private, token), api)
    api = api if api is not None else HfApi()
    given = {"sign": signs_model, "pet": pets_model}
    variables = {m.env: given[m.tab] for m in SPACE_MODELS}
    try:
        for m in SPACE_MODELS:
            if given[m.tab] is not None:
                _check_model(api, token, m.flag, given[m.tab])
    except TLHubError:
        raise
    except Exception as e:
        raise TLHubError(f"cannot check the models on the Hub ({_reason(e)}): are you online?") from None
    files = space_files(Path(space_dir), [m for m in (signs_model, pets_model) if m] or None)
    try:
        url = api.create_repo(
            space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True, token=token
        )
        stale = [
            name
            for name in api.list_repo_files(space_id, repo_type="space", token=token)
            if name.startswith(f"{PACKAGE_DIR}/") and name not in files
        ]
        operations = [CommitOperationAdd(name, data) for name, data in files.items()]
        operations += [CommitOperationDelete(name) for name in stale]
        message = f"Deploy tl_hub {tl_hub.__version__} Space"
        api.create_commit(space_id, operations, repo_type="space", commit_message=message, token=token)
        for key, value in variables.items():
            if value is not None:
                api.add_space_variable(space_id, key, value, description="tl_hub model repo id", token=token)
    except Exception as e:  # the Hub or the network: nothing local changed, so a rerun is the retry
        raise TLHubError(f"deploying Space {space_id!r} failed ({_reason(e)}): rerun the command") from None
    logger.info("deployed %d files to %s", len(files), url)
    return str(url)


def _reason(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
