"""Subcommands that run whole experiments from checkpoints or from scratch: study, reproduce,
hardware."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hqdm.cli import Runner, subcommand
from hqdm.cli.errors import metric_errors
from hqdm.cli.options import int_list, positive_int

if TYPE_CHECKING:
    from hqdm.experiments.hardware_settings import HardwareSettings
    from hqdm.experiments.parallel_cells import Cell


def _parse_digits(text: str) -> tuple[int, ...]:
    from hqdm.config import ConfigError

    try:
        digits = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--digits: expected comma-separated digits such as 0,1,7, got {text!r}") from None
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ConfigError(f"--digits: every digit must be in 0..9, got {text!r}")
    return digits


@subcommand("study", "the long-budget study: full training sets, paired seeds, FID/KID per epoch (resumable)")
def _study(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--dataset", required=True, help="mnist or fashion-mnist")
    parser.add_argument("--models", default="unet,qvunet-1hq", help="comma-separated model names")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument("--data-dir", help="folder holding the dataset files")
    parser.add_argument("--out", help="results folder (default results/study-<dataset>)")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--eval-epochs", default="1,2,5,10", help="epochs evaluated (must include the last)")
    parser.add_argument("--num-samples", type=positive_int, default=2000, help="samples per evaluation")
    parser.add_argument("--steps", type=positive_int, default=100, help="DDIM steps per sample")
    parser.add_argument(
        "--eta", type=float, default=0.0,
        help="DDIM eta of the evaluations: 0 deterministic, 1 fresh noise at every step (docs/RESULTS.md)",
    )  # fmt: skip
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="training and sampling")
    parser.add_argument(
        "--fid-precision", choices=("fp32", "bf16"), default="bf16",
        help="of the FID network (bf16: FID within 0.11%% of fp32, twice as fast; docs/performance.md)",
    )  # fmt: skip
    parser.add_argument(
        "--no-ema", action="store_true",
        help="evaluate the kept epochs' online weights instead of their EMA weights (into eval-online/)",
    )  # fmt: skip
    parser.add_argument(
        "--train-only", action="store_true",
        help="train every cell and keep its evaluation epochs; a later run without it evaluates them",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=positive_int, default=1,
        help="run this many (model, seed) cells at once as separate processes (docs/performance.md)",
    )  # fmt: skip
    parser.add_argument("--threads", type=positive_int, help="per worker (default: the cores shared out)")

    def run(args: argparse.Namespace) -> int:
        from hqdm.experiments.evaluate_checkpoint import EvalSettings
        from hqdm.experiments.study import StudySettings, run_study

        if args.workers > 1:
            return _study_in_parallel(args)

        evaluation = EvalSettings(
            num_samples=args.num_samples, sampler="ddim", steps=args.steps, eta=args.eta,
            metrics=("fid", "kid"), batch_size=250, feature_precision=args.fid_precision,
        )  # fmt: skip
        settings = StudySettings(
            epochs=args.epochs,
            eval_epochs=int_list(args.eval_epochs, "--eval-epochs"),
            grid_epochs=tuple(e for e in (1, 5, 10) if e <= args.epochs),
            precision=args.precision,
            use_ema=not args.no_ema,
            evaluation=evaluation,
        )
        metrics = run_study(
            args.dataset,
            _study_models(args),
            int_list(args.seeds, "--seeds"),
            _study_out(args),
            settings=settings,
            data_dir=args.data_dir,
            progress=True,
            train_only=args.train_only,
        )
        print(f"metrics: {metrics}")
        print(f"report: {metrics.with_name('report.md')} (plot: {metrics.with_name('fid_vs_epoch.png')})")
        return 0

    return run


def _study_models(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(name.strip() for name in args.models.split(",") if name.strip())


def _study_out(args: argparse.Namespace) -> Path:
    return Path(args.out or f"results/study-{args.dataset}")


def _forwarded(args: argparse.Namespace, own: set[str]) -> list[str]:
    """Every option the parent command was given, as command-line words for one of its cells, except the
    ``own`` destinations the cell sets itself (and the parallel run's own options)."""
    words = []
    for dest, value in vars(args).items():
        if (
            dest in own | {"command", "action", "run", "workers", "threads"}
            or value is None
            or value is False
        ):
            continue
        words += [f"--{dest.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return words


def _study_cell_argv(args: argparse.Namespace, model: str, seed: int) -> tuple[str, ...]:
    """The ``hqdm study`` command line of one cell: every option the parent was given, one model, one
    seed, one worker."""
    import sys

    cell = ["--models", model, "--seeds", str(seed)]
    return (sys.executable, "-m", "hqdm", "study", *cell, *_forwarded(args, {"models", "seeds"}))


def _study_in_parallel(args: argparse.Namespace) -> int:
    """Every (model, seed) cell as its own ``hqdm study`` process, ``--workers`` at a time; then the
    report over all of them."""
    from hqdm.experiments.parallel_cells import Cell, default_threads, run_cells
    from hqdm.experiments.study import cache_test_features, finish_study

    out = _study_out(args)
    cells = [
        Cell(f"{m} seed {s}", _study_cell_argv(args, m, s), out / "logs" / f"{m}-seed{s}.log")
        for s in int_list(args.seeds, "--seeds")
        for m in _study_models(args)
    ]
    if not args.train_only:  # once with every core, instead of once per cell at the same time
        cache_test_features(args.dataset, args.data_dir, args.fid_precision)
    workers = min(args.workers, len(cells))  # fewer cells than workers: each gets a larger share
    failed = run_cells(cells, workers=workers, threads=args.threads or default_threads(workers))
    print(f"metrics: {finish_study(out, args.dataset)}")
    if failed:
        names = ", ".join(cell.name for cell in failed)
        print(f"{len(failed)} of {len(cells)} cells failed: {names}; their logs say why")
        return 1
    return 0


@subcommand("reproduce", "train and evaluate every column of a paper's table (resumable)")
def _reproduce(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--paper", choices=("defalco2024", "chen2025"), default="defalco2024")
    parser.add_argument("--dataset", help="mnist or fashion-mnist (required for defalco2024)")
    parser.add_argument("--budget", choices=("smoke", "cpu", "paper"), default="cpu")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per column (default 2)")
    parser.add_argument("--data-dir", help="folder holding the dataset files")
    parser.add_argument("--out", help="results folder (default results/<dataset>-<budget>)")
    parser.add_argument(
        "--semantics", choices=("paper", "reference-code", "both-7hq"), default="both-7hq",
        help="model semantics; both-7hq (default) adds a 7HQConv reference-code column",
    )  # fmt: skip
    parser.add_argument("--inception-weights", help="TorchScript classifier for IS (docs/metrics.md)")
    parser.add_argument("--digits", help="chen2025: comma-separated MNIST digits (default: the budget's)")

    def run(args: argparse.Namespace) -> int:
        import shlex

        from hqdm.config import ConfigError

        if args.paper == "chen2025":
            from hqdm.experiments.chen2025 import reproduce_chen2025

            out = args.out or f"results/chen2025-{args.budget}"
            extra: dict[str, object] = {"dataset": args.dataset} if args.dataset else {}
            if args.digits:
                extra["digits"] = _parse_digits(args.digits)
            table = reproduce_chen2025(
                out, data_dir=args.data_dir, seeds=args.seeds, budget=args.budget, **extra
            )
            print(f"table: {table}")
            return 0
        from hqdm.experiments.reproduce import reproduce_defalco2024

        if args.dataset is None:
            raise ConfigError("--dataset: required for defalco2024 (mnist or fashion-mnist)")
        out = args.out or f"results/{args.dataset}-{args.budget}"
        options = [
            f"--dataset {args.dataset}", f"--budget {args.budget}", f"--seeds {args.seeds}",
            f"--semantics {args.semantics}", f"--out {shlex.quote(out)}",
        ]  # fmt: skip
        options += [f"--data-dir {shlex.quote(args.data_dir)}"] if args.data_dir else []
        if args.inception_weights:
            options.append(f"--inception-weights {shlex.quote(args.inception_weights)}")
        result = reproduce_defalco2024(
            out,
            dataset=args.dataset,
            budget=args.budget,
            seeds=args.seeds,
            data_dir=args.data_dir,
            semantics=args.semantics,
            inception_weights=args.inception_weights,
            command="hqdm reproduce " + " ".join(options),
            progress=True,
        )
        print(result.table_md.read_text(encoding="utf-8").split("\n## ")[0].rstrip())
        print(f"  table: {result.table_md} and {result.table_csv}")
        return 0

    return metric_errors(run)


@subcommand("hardware", "finite shots, hardware noise and OpenQASM export of a trained hybrid")
def _hardware(parser: argparse.ArgumentParser) -> Runner:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{measure,qasm}")
    measure = actions.add_parser(
        "measure", help="FID/KID of a checkpoint read out with shots and under noise (docs/hardware.md)"
    )
    measure.add_argument(
        "checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)"
    )
    measure.add_argument("--out", required=True, help="folder for cells/, grids/, hardware.md and the plot")
    measure.add_argument(
        "--shots", default="64,256,1024,4096,exact", help="comma-separated; exact = no shots"
    )
    measure.add_argument(
        "--noise",
        default="sycamore-2019,h2-2023,random-readout",  # every READOUT_LEVELS name (a test checks)
        help="comma-separated levels ('' none); random-readout is the control with every <Z> = 0",
    )
    measure.add_argument("--noise-shots", default="exact", help="shots of the noisy settings (default exact)")
    measure.add_argument("--trajectories", type=positive_int, default=32, help="per circuit, large circuits")
    measure.add_argument("--seeds", default="0,1,2", help="comma-separated sampling and shot seeds")
    measure.add_argument("--num-samples", type=positive_int, default=1000, help="images per cell")
    measure.add_argument("--steps", type=positive_int, default=50, help="DDIM steps")
    measure.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 fresh noise")
    measure.add_argument("--batch-size", type=positive_int, default=250)
    measure.add_argument("--data-dir", help="folder holding the checkpoint's dataset (real images)")
    measure.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    measure.add_argument("--fid-precision", choices=("fp32", "bf16"), default="fp32")
    measure.add_argument(
        "--workers", type=positive_int, default=1,
        help="score this many (setting, seed) cells at once as separate processes (like hqdm study)",
    )  # fmt: skip
    measure.add_argument("--threads", type=positive_int, help="per worker (default: the cores shared out)")
    qasm = actions.add_parser("qasm", help="every circuit of a checkpoint as OpenQASM 3 with trained angles")
    qasm.add_argument("checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)")
    qasm.add_argument("--out", required=True, help="folder for the .qasm files and circuits.json")
    qasm.add_argument("--no-ema", action="store_true", help="the online weights instead of the EMA weights")

    def run(args: argparse.Namespace) -> int:
        from hqdm.train import resolve_checkpoint
        from hqdm.train.setup import resolve_device

        if args.action == "qasm":
            from hqdm.models.qasm_export import export_circuits
            from hqdm.train.generate import load_checkpoint_model

            checkpoint = resolve_checkpoint(Path(args.checkpoint))
            model, _ = load_checkpoint_model(
                checkpoint, use_ema=not args.no_ema, device=resolve_device("cpu")
            )
            manifest = export_circuits(model, args.out, source=str(checkpoint))
            print(f"OpenQASM 3 programs of every circuit in {args.out}; manifest: {manifest}")
            return 0
        from hqdm.experiments.hardware import run_hardware_study
        from hqdm.experiments.hardware_settings import HardwareSettings, parse_shots

        noise_shots = parse_shots(args.noise_shots)  # every setting is checked before any work
        settings = HardwareSettings(
            shots=parse_shots(args.shots), noise_levels=tuple(n for n in args.noise.split(",") if n.strip()),
            noise_shots=noise_shots[0] if noise_shots else None, trajectories=args.trajectories,
            seeds=int_list(args.seeds, "--seeds"), num_samples=args.num_samples, steps=args.steps,
            eta=args.eta, batch_size=args.batch_size, feature_precision=args.fid_precision,
        )  # fmt: skip
        checkpoint = resolve_checkpoint(Path(args.checkpoint))  # a wrong path fails before any cell
        if args.workers > 1 and _hardware_in_parallel(args, settings):
            return 1
        result = run_hardware_study(  # after the workers every cell is on disk: this writes the report
            checkpoint, args.out, settings, data_dir=args.data_dir,
            device=resolve_device(args.device, key="--device"), progress=True,
        )  # fmt: skip
        print((result.out_dir / "hardware.md").read_text(encoding="utf-8").rstrip())
        return 0

    return metric_errors(run)


def _hardware_in_parallel(args: argparse.Namespace, settings: HardwareSettings) -> list[Cell]:
    """Every (setting, seed) cell of ``hqdm hardware measure`` as its own process, ``--workers`` at a time,
    the costliest first (:meth:`HardwareSettings.costliest_first`); returns the cells that failed."""
    import sys

    from hqdm.experiments.hardware_settings import EXACT
    from hqdm.experiments.parallel_cells import Cell, default_threads, run_cells

    own = {"checkpoint", "shots", "noise", "seeds"}
    base = (sys.executable, "-m", "hqdm", "hardware", "measure", args.checkpoint, *_forwarded(args, own))
    cells = []
    for setting in settings.costliest_first():
        shots = "" if setting.noise else EXACT if setting.shots is None else str(setting.shots)
        for seed in settings.seeds:
            cell = ("--shots", shots, "--noise", setting.noise or "", "--seeds", str(seed))
            log = Path(args.out) / "logs" / f"{setting.label}-seed{seed}.log"
            cells.append(Cell(f"{setting.label} seed {seed}", (*base, *cell), log))
    workers = min(args.workers, len(cells))
    failed = run_cells(cells, workers=workers, threads=args.threads or default_threads(workers))
    if failed:
        names = ", ".join(cell.name for cell in failed)
        print(f"{len(failed)} of {len(cells)} cells failed: {names}; their logs say why")
    return failed
