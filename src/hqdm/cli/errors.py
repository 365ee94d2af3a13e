"""How the command line reports errors a user can cause: one named line on stderr and exit code 2, never a
traceback."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hqdm.cli import Runner

__all__ = ["EXIT_USER_ERROR", "metric_errors", "report_error", "user_errors"]

EXIT_USER_ERROR = 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "the input is wrong", imported lazily (torch is slow to import)."""
    from hqdm.config import ConfigError
    from hqdm.data import DatasetError
    from hqdm.models.pretrained import PretrainedError
    from hqdm.quantum.errors import MeasurementError
    from hqdm.registry import UnknownNameError
    from hqdm.train import CheckpointError, NonFiniteLossError, RunDirError
    from hqdm.train.distributed import DistributedError
    from hqdm.train.lock import RunLockedError

    return (
        ConfigError, DatasetError, CheckpointError, RunDirError, NonFiniteLossError, DistributedError,
        PretrainedError, MeasurementError, RunLockedError, UnknownNameError, OSError,
    )  # fmt: skip


def report_error(err: BaseException) -> None:
    """Print ``err`` as ``hqdm: error: <Class>: <first line>``, its further lines indented below."""
    from hqdm.files import storage_cause
    from hqdm.train import StorageError

    name, text = type(err).__name__, str(err)
    # a failed write outside a checkpoint (a log row, a grid, the run lock): say what it means
    if isinstance(err, OSError) and not isinstance(err, StorageError) and (cause := storage_cause(err)):
        name = "StorageError"
        text = f"cannot write {err.filename!r}: {cause}. Free space (or fix the folder) and run again"
        text += "; a training run continues with --resume"
    first, *rest = text.strip().splitlines() or [""]
    print(f"hqdm: error: {name}: {first}", file=sys.stderr)
    for line in rest:  # e.g. where a dataset was looked for and how to provide it
        print(f"  {line}", file=sys.stderr)


def metric_errors(run: Runner) -> Runner:
    """Report metric problems (missing FID network, bad weights file) like the other user errors."""

    def guarded(args: argparse.Namespace) -> int:
        from hqdm.metrics import MetricsError

        try:
            return run(args)
        except MetricsError as err:
            report_error(err)
            return EXIT_USER_ERROR

    return guarded
