"""A graceful stop for long training runs: SIGTERM or Ctrl-C ends the run after the current step, with a
checkpoint of exactly that step, instead of losing everything since the last periodic checkpoint.

A working session that must end (or a cluster's scheduler) sends SIGTERM; the trainer finishes its step,
saves, and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``, so whatever would have run after
the training, an evaluation of a half-trained model, does not); the same command then resumes where it
stopped, and the resumed run replays the uninterrupted one bit for bit (:mod:`hqdm.train.trainer`). A
second signal while the checkpoint is being written interrupts at once. Handlers can only be installed
from the main thread; elsewhere (a run inside a worker thread) the signals keep their usual meaning.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

#: the signals that ask a run to stop after its current step
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after saving a checkpoint of its last step; ``result`` is its
    :class:`~hqdm.train.trainer.RunResult` (step, checkpoint)."""

    def __init__(self, result: Any) -> None:
        super().__init__(f"stopped at step {result.state.step}; checkpoint {result.final_checkpoint}")
        self.result = result


class StopRequests:
    """While entered, the first SIGTERM / SIGINT sets :attr:`requested` instead of ending the process."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
