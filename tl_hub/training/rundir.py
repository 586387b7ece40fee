"""The run directory as a resource: checked, created and locked for one run at a time.

`claim_run_dir` is what `train` runs inside. It
- refuses an output path that cannot hold a run (a file, a path under a file, /proc, a read-only place),
  naming the path, before any data is decoded;
- takes an exclusive lock (`fcntl.flock` on OUTPUT_DIR/.lock, released by the kernel when the process ends,
  even on `kill -9`): a second run into the same directory is refused with one line naming the holder;
- on a failure before the first checkpoint, removes what it made, so nothing half-made is left behind (a
  rerun of the same command starts clean; a directory that already held other files keeps them).

With several processes, the main process holds the lock and tells the others whether it got it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from tl_hub.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def check_output_dir(path: Path, flag: str = "--output-dir") -> None:
    """Create `path` (and its parents) or say in one line why it cannot hold a run."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a file, not a directory: choose a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"{flag} {str(path)!r} cannot be created ({e.strerror or e}): choose a writable directory"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(path)!r} is not writable: choose a writable directory")


class RunLock:
    """An exclusive, advisory lock on a run directory; the lock file says who holds it."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; returns None, or a description of the process that holds it."""
        if fcntl is None:
            return None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(
                f"--output-dir {str(self.path.parent)!r} is not writable ({e.strerror}): "
                "choose a writable directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            for _ in range(40):  # the holder writes who it is just after it locks: give it a moment
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.025)
            os.close(fd)
            return _describe(holder)
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}
        os.write(fd, json.dumps(info).encode())
        self.fd = fd
        return None

    def release(self, remove: bool = False) -> None:
        if self.fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"process {info['pid']} on {info['host']} ({info['command']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def claim_run_dir(
    output_dir: Path, accelerator: Accelerator, has_progress: Callable[[], bool]
) -> Iterator[None]:
    """Check, create and lock `output_dir` for the `with` body; on a failure while `has_progress()` is
    still false (no checkpoint, no release), remove what this run created there."""
    existed = output_dir.exists()
    before = set(os.listdir(output_dir)) if existed and output_dir.is_dir() else set()
    lock = RunLock(output_dir)
    refusal = None
    if accelerator.is_main_process:
        check_output_dir(output_dir)
        holder = lock.acquire()
        if holder is not None:
            refusal = (
                f"--output-dir {str(output_dir)!r} is in use by {holder}: wait for it to finish, "
                "or choose another --output-dir"
            )
    if accelerator.num_processes > 1:
        refusal = broadcast_object_list([refusal])[0]
    if refusal is not None:
        raise ConfigError(refusal)
    failed = True
    try:
        yield
        failed = False
    finally:
        if accelerator.is_main_process:
            clean = failed and not has_progress()
            if clean:
                _remove_new_files(output_dir, before, existed)
            lock.release(remove=clean)
            if clean and not existed:
                with contextlib.suppress(OSError):
                    output_dir.rmdir()  # only if empty: nothing but this run's files were there


def _remove_new_files(output_dir: Path, before: set[str], existed: bool) -> None:
    """Remove the files this run made in `output_dir` (none it found there)."""
    for name in set(os.listdir(output_dir)) - before - {LOCK_NAME}:
        path = output_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    logger.info(
        "the run stopped before its first checkpoint: removed what it wrote in %s%s",
        output_dir,
        "" if existed else " (and the directory)",
    )
