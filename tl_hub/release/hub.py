"""Where a release's files come from: a local directory, or a Hub model repo (downloaded and cached)."""

from __future__ import annotations

from pathlib import Path

from tl_hub.errors import TLHubError


def fetch(repo_or_dir: str | Path, filename: str) -> Path:
    """The local path of `filename` in a release directory, or downloaded from the Hub repo `repo_or_dir`."""
    path = Path(repo_or_dir).expanduser()
    if path.is_dir():
        if not (path / filename).is_file():
            raise TLHubError(f"{filename} not found in {str(path)!r}: is it a tl_hub release directory?")
        return path / filename
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(str(repo_or_dir), filename))
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
