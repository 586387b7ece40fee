"""Where a release's files come from: a local directory, or a Hub model repo (downloaded and cached)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from tl_hub.errors import TLHubError

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def fetch(
    repo_or_dir: str | Path, filename: str, api: HfApi | None = None, revision: str | None = None
) -> Path:
    """The local path of `filename` in a release directory, or downloaded from the Hub repo `repo_or_dir`
    (at `revision`: a branch, tag or commit sha; None: main).

    `api` is the Hub client to download with (its endpoint and token); None: huggingface_hub's defaults.
    """
    path = Path(repo_or_dir).expanduser()
    if path.is_dir():
        if not (path / filename).is_file():
            raise TLHubError(f"{filename} not found in {str(path)!r}: is it a tl_hub release directory?")
        return path / filename
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    hub = api if api is not None else HfApi()
    try:
        return Path(hub.hf_hub_download(str(repo_or_dir), filename, revision=revision))
    except LocalEntryNotFoundError:
        raise TLHubError(
            f"{str(repo_or_dir)!r} is not a local directory, and the Hub cannot be reached to download it "
            "(offline?): pass a release directory or connect to the Hub"
        ) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as e:
        raise TLHubError(f"cannot load {filename} from {str(repo_or_dir)!r}: {type(e).__name__}") from None
    except (OSError, ValueError) as e:
        raise TLHubError(
            f"{str(repo_or_dir)!r} is neither a local directory nor a reachable Hub repo "
            f"({type(e).__name__}): pass a release directory, or connect to the Hub"
        ) from None


def commit_of(downloaded: Path) -> str | None:
    """The commit sha a file that `fetch` downloaded belongs to: huggingface_hub keeps each download under
    `snapshots/<commit sha>/` in its cache, where the revision was resolved. None for a local release's file.
    """
    snapshot = downloaded.parent
    if snapshot.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", snapshot.name):
        return snapshot.name
    return None
