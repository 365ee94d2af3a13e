"""Progress output (hqdm.progress): plain lines in logs, nothing when disabled."""

from __future__ import annotations

import io

from hqdm.progress import LineProgress, progress_bar, progress_iter


def test_lines_count_done_of_total_with_percent_and_time_left() -> None:
    out = io.StringIO()
    bar = LineProgress(200, desc="sampling", unit="image", interval=0.0, stream=out)
    bar.update(50)
    bar.set_postfix(loss="0.0312")
    bar.update(50)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sampling: 50/200 image (25%), 0m00s elapsed, ~0m00s left")
    assert lines[1].startswith("sampling: 100/200 image (50%)") and lines[1].endswith("[loss=0.0312]")
    assert len(lines) == 3 and "\r" not in out.getvalue()


def test_lines_wait_for_the_interval_and_a_closed_bar_says_where_it_ended() -> None:
    out = io.StringIO()
    bar = LineProgress(None, desc="training", unit="step", initial=10, interval=3600.0, stream=out)
    for _ in range(5):
        bar.update(1)
    assert out.getvalue() == ""  # within the interval: silent
    bar.close()
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]  # once, on the first close
    assert out.getvalue().startswith("training: 15 step, ")


def test_not_on_a_terminal_progress_is_written_as_lines_and_disabled_progress_is_silent(capsys) -> None:
    assert isinstance(progress_bar(3, desc="x", unit="batch"), LineProgress)  # pytest's stderr is no tty
    assert list(progress_iter(range(3), desc="quiet", unit="batch", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    assert list(progress_iter(range(3), desc="loud", unit="batch", total=3)) == [0, 1, 2]
    assert capsys.readouterr().err.startswith("loud: 3/3 batch (100%)")
