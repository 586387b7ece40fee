"""Publishing a release directory to the Hugging Face Hub: repo, files, model card, commit message."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token

from tl_hub.errors import TLHubError
from tl_hub.release.card import render_model_card
from tl_hub.release.facts import load_facts
from tl_hub.release.files import CARD_NAME, release_dir, release_files
from tl_hub.release.load import from_pretrained

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushTarget:
    repo_id: str  # USER/NAME
    private: bool = False
    token: str | None = None  # None: HF_TOKEN or the token saved by `hf auth login`


def check_can_push(target: PushTarget, api: HfApi | None = None) -> str:
    """The token to push with; a TLHubError saying how to get one, or how to leave offline mode, otherwise.

    The token is the target's, else the one `api` was made with, else huggingface_hub's (`get_token`).
    """
    if target.repo_id.count("/") != 1 or not all(target.repo_id.split("/")):
        raise TLHubError(f"--hub-model-id {target.repo_id!r} is not of the form USER/NAME (or ORG/NAME)")
    if constants.HF_HUB_OFFLINE:
        raise TLHubError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    api_token = api.token if api is not None and isinstance(api.token, str) else None
    token = target.token or api_token or get_token()
    if not token:
        raise TLHubError(
            "no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --hub-token "
            "(a token with write access)"
        )
    return token


def commit_message(directory: Path) -> str:
    """'Upload RECIPE model: test accuracy 0.9550' (validation accuracy when no test result is on record)."""
    facts = load_facts(directory)
    headline = facts.headline() if facts is not None else None
    if facts is None or headline is None:
        return "Upload tl_hub model"
    return f"Upload {facts.recipe.name} model: {headline.split} accuracy {headline.accuracy:.4f}"


def push_to_hub(path: str | Path, target: PushTarget, api: HfApi | None = None) -> str:
    """Upload the release files of `path` to `target.repo_id` (created if missing); returns the repo URL.

    Only the release files go up (with its example images), never resume state; the model card is rendered
    for the repo id. The
    release must load (config.json and weights, as `from_pretrained` checks them). A failure leaves the local
    directory as it was, and the error says how to retry. `api` is the Hub client (its endpoint; its token
    unless the target has one); None: huggingface_hub's defaults.
    """
    directory = release_dir(path)
    from_pretrained(directory)  # a release that would not load is refused here, not by its users
    token = check_can_push(target, api)
    card = render_model_card(directory, repo_id=target.repo_id)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
        for name in release_files(directory)
        if name != CARD_NAME
    ]
    operations.append(CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=str(card).encode()))
    message = commit_message(directory)
    api = api if api is not None else HfApi()
    try:
        url = api.create_repo(target.repo_id, private=target.private, exist_ok=True, token=token)
        api.create_commit(target.repo_id, operations, commit_message=message, token=token)
    except Exception as e:  # any failure of the Hub or the network: keep the files and say how to retry
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TLHubError(
            f"push to {target.repo_id!r} failed ({reason}); the release in {str(directory)!r} is unchanged: "
            f"retry with `python scripts/push.py {directory} {target.repo_id}`"
        ) from None
    logger.info("pushed %s to %s (%s)", directory, url, message)
    return str(url)
