"""Progress bars that suit where they are written: live in a terminal, a few plain lines in a log file.

tqdm redraws its bar with a carriage return several times a second. In a terminal that is a live bar; in a
file (nohup, CI, SLURM's output) every frame stays: one 20-epoch cnn-gtsrb run wrote 614 KB of them. When
the bar's stream is not a terminal, `Progress` writes a whole line instead, and only when another tenth of
the work is done and `LINE_SECONDS` have passed since its last line (or since it started), so a short bar
writes nothing and a long one a line every few percent.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.std import tqdm

LINE_SECONDS = 30.0  # the least time between two lines of one bar in a log file
LINE_FRACTION = 0.1  # the least share of the work between two lines (when the total is known)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress(tqdm):
    """tqdm, drawn live in a terminal; in a file, a line per tenth of the work at most every 30 s.

    `Progress(iterable, desc=..., total=..., leave=..., disable=...)` takes tqdm's arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        stream = kwargs.get("file") or sys.stderr
        self.lines = not _is_terminal(stream)
        if self.lines:
            # every update reaches display(), which decides (tqdm's own timing, and its monitor thread, off)
            kwargs.setdefault("mininterval", 0)
            kwargs.setdefault("miniters", 1)
            kwargs.setdefault("maxinterval", float("inf"))
            kwargs.setdefault("ascii", True)
        self._line_n = 0
        self._line_t = time.monotonic()
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        if not self.lines:
            super().display(msg, pos)
            return
        if msg == "" or self.n == self._line_n:  # a bar cleared on close, or nothing new since the last line
            return
        now = time.monotonic()
        step = max(1, int(self.total * LINE_FRACTION)) if self.total else 1
        final = bool(self.total) and self.n >= self.total and self.leave
        if not final and (self.n - self._line_n < step or now - self._line_t < LINE_SECONDS):
            return
        self._line_n, self._line_t = self.n, now
        self.fp.write(self.__str__() + "\n")
        self.fp.flush()

    def close(self) -> None:
        if self.lines and not self.disable and self.leave:
            self.display()  # the finished bar's line, without tqdm's extra newline
            self.leave = False
        super().close()
