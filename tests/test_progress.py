"""Progress bars: live carriage-return frames in a terminal; in a file, a line per tenth of the work, at most
one every 30 s."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from tl_hub import progress
from tl_hub.progress import Progress

from .test_bad_inputs import run_script_ok
from .test_cli import TRAIN


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_bar(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, seconds_per_item: float, **kwargs) -> str:
    """100 items, each taking `seconds_per_item` on a fake clock."""
    clock = itertools.count(0.0, seconds_per_item)
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    for _ in Progress(range(100), desc="work", file=stream, **kwargs):
        pass
    return stream.getvalue()


def test_in_a_file_a_slow_bar_writes_a_line_per_tenth(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_bar(monkeypatch, io.StringIO(), seconds_per_item=10.0)
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split("|")[0] for line in lines] == [f"work: {p:3d}%" for p in range(10, 101, 10)]


def test_in_a_file_lines_are_at_least_30_seconds_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_bar(monkeypatch, io.StringIO(), seconds_per_item=1.0)
    # a tenth takes 10 s: a line when 30 s have passed, at 30%, 60% and 90%, and the finished bar
    assert [line.split("|")[0] for line in text.splitlines()] == [f"work: {p:3d}%" for p in (30, 60, 90, 100)]


def test_in_a_file_a_quick_bar_writes_only_its_end_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(run_bar(monkeypatch, io.StringIO(), seconds_per_item=0.01).splitlines()) == 1
    assert run_bar(monkeypatch, io.StringIO(), seconds_per_item=0.01, leave=False) == ""


def test_in_a_terminal_the_bar_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_bar(monkeypatch, Terminal(), seconds_per_item=0.01, mininterval=0)
    assert text.count("\r") > 50  # a frame per refresh, drawn over the last


def test_a_redirected_training_run_writes_no_frames(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    args = ["--dataset", "synthetic", "--synthetic-per-class", "4", "--batch-size", "16", "--epochs", "1"]
    code, err = run_script_ok(TRAIN, [*args, "--output-dir", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 0 and "\r" not in err


def test_the_feature_extraction_bar_says_what_it_does(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from tl_hub.config import PreprocessConfig
    from tl_hub.models import create_model
    from tl_hub.training import features

    labels = []

    class Recorded(Progress):
        def __init__(self, *args, **kwargs):
            labels.append(kwargs["desc"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(features, "Progress", Recorded)
    model = create_model("lenet5", num_classes=3, in_chans=1, img_size=32, drop_rate=0.0)
    images = torch.zeros((4, 1, 32, 32), dtype=torch.uint8)
    preprocess = PreprocessConfig(grayscale=True, mean=(0.5,), std=(0.5,))
    features.extract(model, images, preprocess, torch.device("cpu"), desc="validation")
    assert labels == ["extracting features: validation"]
