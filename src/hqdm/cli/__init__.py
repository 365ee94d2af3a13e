"""The ``hqdm`` command line (also ``python -m hqdm``).

Each subcommand is one function decorated with :func:`subcommand`: it receives its own argparse
parser, adds its arguments and returns the function that runs it (``Namespace -> exit code``)::

    @subcommand("evaluate", "score samples against a dataset")
    def _evaluate(parser: argparse.ArgumentParser) -> Runner:
        parser.add_argument("samples")
        def run(args: argparse.Namespace) -> int:
            ...
            return 0
        return run

The subcommands live in one module per group: :mod:`~hqdm.cli.training` (train, sample, export, evaluate,
score), :mod:`~hqdm.cli.experiments` (study, reproduce, hardware), :mod:`~hqdm.cli.inspection` (models, data,
bench) and :mod:`~hqdm.cli.showcase` (demo). Every module of this package imports torch and the rest of
hqdm only inside functions, so that ``hqdm --help`` and argument errors stay fast.

Errors a user can cause (missing file, bad config, missing data, ...) print one named error line and
exit with code 2; they never show a traceback (:mod:`hqdm.cli.errors`). Output piped into a reader that
stops early (``| head``) ends the command quietly with code 141, as SIGPIPE would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from hqdm.cli.errors import EXIT_USER_ERROR, report_error, user_errors

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_USER_ERROR",
    "HELP_ORDER",
    "Runner",
    "build_parser",
    "main",
    "subcommand",
]

Runner = Callable[[argparse.Namespace], int]
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE
Configure = Callable[[argparse.ArgumentParser], Runner]

# The order of ``hqdm --help``: the everyday commands first, whichever module defines them.
HELP_ORDER = (
    "train", "sample", "export", "models", "demo", "data", "bench", "evaluate", "score", "study", "reproduce",
    "hardware", "eps-error",
)  # fmt: skip
_SUBCOMMANDS: dict[str, tuple[str, Configure]] = {}


def subcommand(name: str, help: str) -> Callable[[Configure], Configure]:
    """Register ``configure`` as the subcommand ``name``, listed in ``--help`` at its place in
    :data:`HELP_ORDER`."""
    if name not in HELP_ORDER:  # a new command would otherwise be missing from --help without a word
        raise ValueError(f"subcommand {name!r}: add it to HELP_ORDER in hqdm/cli/__init__.py")

    def register(configure: Configure) -> Configure:
        _SUBCOMMANDS[name] = (help, configure)
        return configure

    return register


def build_parser() -> argparse.ArgumentParser:
    from hqdm import __version__

    # importing the command modules registers their subcommands
    from hqdm.cli import experiments, inspection, showcase, training  # noqa: F401

    parser = argparse.ArgumentParser(prog="hqdm", description="Hybrid quantum-classical diffusion models.")
    parser.add_argument("--version", action="version", version=f"hqdm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in HELP_ORDER:
        help_text, configure = _SUBCOMMANDS[name]
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=configure(sub))
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what is still buffered for the
    closed pipe does not fail again at exit."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hqdm.train.memory import keep_freed_memory

    keep_freed_memory()
    errors = user_errors()
    try:
        code = args.run(args)
    except BrokenPipeError:  # the reader of our output left early (``hqdm models | head -1``): not an error
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except errors as err:
        report_error(err)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as err:
        from hqdm.train.stopping import TrainingInterrupted

        saved = f": {err}" if isinstance(err, TrainingInterrupted) else ""
        print(
            f"hqdm: interrupted{saved} (the same command continues the training from its last "
            "checkpoint; hqdm train needs --resume)",
            file=sys.stderr,
        )
        return 130
    if code == 0:  # after a failure, no barrier: the failed rank would never reach it
        from hqdm.train.distributed import exit_without_teardown, leave_process_group

        if leave_process_group():  # a rank of a torchrun job: its teardown could abort it
            exit_without_teardown(code)
    return code
