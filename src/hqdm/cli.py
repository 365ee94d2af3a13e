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

Errors a user can cause (missing file, bad config, missing data, ...) print one named error line and
exit with code 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["EXIT_USER_ERROR", "Runner", "build_parser", "main", "subcommand"]

EXIT_USER_ERROR = 2
Runner = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], Runner]
_SUBCOMMANDS: list[tuple[str, str, Configure]] = []


def subcommand(name: str, help: str) -> Callable[[Configure], Configure]:
    """Register ``configure`` as the subcommand ``name`` (in registration order)."""

    def register(configure: Configure) -> Configure:
        _SUBCOMMANDS.append((name, help, configure))
        return configure

    return register


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "the input is wrong", imported lazily (torch is slow to import)."""
    from hqdm.config import ConfigError
    from hqdm.data import DatasetError
    from hqdm.models.pretrained import PretrainedError
    from hqdm.quantum.errors import MeasurementError
    from hqdm.train import CheckpointError, NonFiniteLossError, RunDirError
    from hqdm.train.distributed import DistributedError
    from hqdm.train.lock import RunLockedError

    return (
        ConfigError, DatasetError, CheckpointError, RunDirError, NonFiniteLossError, DistributedError,
        PretrainedError, MeasurementError, RunLockedError, OSError,
    )  # fmt: skip


def _choices(text: str, valid: Sequence[str], option: str) -> tuple[str, ...]:
    """A comma-separated list of names from ``valid``; anything else is a named usage error."""
    from hqdm.config import ConfigError

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ConfigError(f"{option}: unknown or empty {unknown or text!r}; choose from {','.join(valid)}")
    return names


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0, else argparse's named usage error."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, else argparse's named usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _add_precision(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help=f"classical layers in fp32 or bf16 autocast, {what}",
    )


# --- subcommands ---------------------------------------------------------------------------------


@subcommand("train", "train a model from a YAML config (resumable)")
def _train(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("config", help="YAML config, e.g. configs/mnist-1hq.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.epochs=5 (repeatable; VALUE is YAML)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in the run dir"
    )
    parser.add_argument("--data-dir", help="folder holding the dataset files (sets data.data_dir)")
    parser.add_argument("--out", help="run directory (sets output_dir)")
    parser.add_argument(
        "--max-steps", type=_positive_int, help="stop (with a checkpoint) after this many optimiser steps"
    )
    _add_precision(parser, "sets training.precision (default: the config's)")

    def run(args: argparse.Namespace) -> int:
        from hqdm.config import load_config
        from hqdm.train import train
        from hqdm.train.distributed import is_main_process

        options = (
            ("data.data_dir", args.data_dir),
            ("output_dir", args.out),
            ("training.precision", args.precision),
        )
        values = {k: v for k, v in options if v is not None}
        cfg = load_config(args.config, args.overrides, values=values)
        result = train(cfg, resume=args.resume, max_steps=args.max_steps)
        if not is_main_process():  # under torchrun, rank 0 reports for the job
            return 0
        status = "finished" if result.completed else f"stopped at step {result.state.step}"
        print(f"training {status}; run directory: {result.run_dir}")
        print(f"  last checkpoint: {result.final_checkpoint}")
        print(f"  loss curve: {result.loss_plot}")
        for grid in result.grids:
            print(f"  sample grid: {grid}")
        return 0

    return run


def _sampler_names() -> list[str]:
    from hqdm.diffusion import available_samplers

    return available_samplers()


@subcommand("sample", "draw samples from a checkpoint into a PNG grid and an .npz")
def _sample(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument(
        "checkpoint", nargs="?", help="checkpoint directory, or a run directory (its newest checkpoint)"
    )
    parser.add_argument(
        "--pretrained", metavar="NAME_OR_DIR", help="sample a pretrained model instead of a checkpoint"
    )
    parser.add_argument("-n", "--num-images", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--sampler", choices=_sampler_names(), default="ddim")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM always uses all timesteps)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    parser.add_argument("--out", required=True, help="folder for samples.png and samples.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-ema", action="store_true", help="use the online weights instead of the EMA weights"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    _add_precision(parser, "of the classical layers (default: the one the model was trained at)")
    parser.add_argument("--shots", type=int, help="read every circuit out with N shots (docs/hardware.md)")
    parser.add_argument("--noise", help="hardware noise: a level (sycamore-2019, h2-2023) or KEY=RATE,...")

    def run(args: argparse.Namespace) -> int:
        from hqdm.config import ConfigError
        from hqdm.experiments.hardware import measured_model_factory, measurement_from_options
        from hqdm.train import sample_to_folder
        from hqdm.train.distributed import is_main_process
        from hqdm.train.trainer import resolve_device

        device = resolve_device(args.device, key="--device")
        if (args.checkpoint is None) == (args.pretrained is None):
            raise ConfigError("sample: give a CHECKPOINT or --pretrained NAME_OR_DIR (one of them)")
        draw = {
            "num_images": args.num_images, "sampler": args.sampler, "steps": args.steps, "eta": args.eta,
            "seed": args.seed, "device": device, "progress": True,
        }  # fmt: skip
        pretrained = args.pretrained is not None
        measurement = measurement_from_options(args.shots, args.noise)
        if measurement is not None and pretrained:
            raise ConfigError(
                "--shots/--noise: sample a checkpoint (not --pretrained) to measure its circuits"
            )
        result = sample_to_folder(
            args.pretrained if pretrained else args.checkpoint, args.out, pretrained=pretrained,
            use_ema=not args.no_ema, precision=args.precision,
            model_factory=measured_model_factory(measurement, args.seed), **draw,
        )  # fmt: skip
        if not is_main_process():
            return 0
        print(f"{result.num_images} samples from {result.checkpoint}")
        print(f"  grid: {result.png}")
        print(f"  uint8 array (key 'images', N x C x H x W): {result.npz}")
        return 0

    return run


@subcommand("export", "write a checkpoint's EMA weights as a pretrained folder with a model card")
def _export(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)")
    parser.add_argument("--out", required=True, help="the pretrained folder to write")
    parser.add_argument("--name", help="the model's name in its card (default: the folder's name)")
    parser.add_argument(
        "--evaluation", help="an evaluation.json of this checkpoint: its scores go in the card"
    )

    def run(args: argparse.Namespace) -> int:
        from hqdm.experiments.export import export_pretrained

        folder = export_pretrained(args.checkpoint, args.out, name=args.name, evaluation=args.evaluation)
        print(f"pretrained model written to {folder} (config.json, model.safetensors, README.md)")
        print(f"  sample it: hqdm sample --pretrained {folder} -n 64 --out samples/")
        return 0

    return run


@subcommand("models", "list the registered models and their parameter counts")
def _models(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument(
        "--channels", type=int, default=1, help="image channels (1 for MNIST, 3 for PathMNIST)"
    )
    parser.add_argument(
        "--qpu-cost", action="store_true",
        help="instead: circuit executions of each hybrid per forward, sampled image and training step",
    )  # fmt: skip
    parser.add_argument("--batch", type=_positive_int, default=1, help="with --qpu-cost: the batch size")
    parser.add_argument("--shots", type=_positive_int, help="with --qpu-cost: also total shots at N each")
    parser.add_argument("--semantics", choices=("paper", "reference-code"), default="paper")

    def run(args: argparse.Namespace) -> int:
        from hqdm.models import format_model_table

        if args.qpu_cost:
            from hqdm.models.qpu_cost import format_qpu_cost_table

            options = {"batch": args.batch, "shots": args.shots, "semantics": args.semantics}
            print(format_qpu_cost_table(in_channels=args.channels, **options))
            return 0
        print(format_model_table(in_channels=args.channels))
        return 0

    return run


@subcommand("demo", "draw from a shipped hybrid and its classical twin side by side (or train a small one)")
def _demo(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--out", default="hqdm-demo", help="output folder (default ./hqdm-demo)")
    parser.add_argument(
        "--models", help="comma-separated pretrained names or folders (default: those of "
        "fashion-mnist-1hq,fashion-mnist-unet that are shipped)",
    )  # fmt: skip
    parser.add_argument("-n", "--num-images", type=_positive_int, default=16, help="images per model")
    parser.add_argument("--ddim-steps", type=_positive_int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-minutes", type=_positive_float,
        help="instead: train a small hybrid on the shipped data subset for N minutes, then sample",
    )  # fmt: skip
    parser.add_argument(
        "--train-steps", type=_positive_int, help="with --train-minutes: stop after this many steps"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="with --train-minutes: override a training setting, e.g. --set data.dataset=embedded-mnist",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        from hqdm.config import ConfigError
        from hqdm.train.demo import compare_pretrained, train_demo

        training = args.train_minutes is not None or args.train_steps is not None
        if not training:
            if args.overrides:
                raise ConfigError("demo: --set applies to training; add --train-minutes N")
            models = None if args.models is None else tuple(args.models.split(","))
            result = compare_pretrained(
                args.out, models=models, num_images=args.num_images, steps=args.ddim_steps, seed=args.seed
            )
            print(f"drew {result.num_images} images (seed {args.seed}, DDIM {args.ddim_steps} steps) from")
            for label in result.labels:
                print(f"  {label}")
            print(f"in {result.seconds:.1f} s; side by side in {result.png}")
            return 0
        trained = train_demo(
            args.out, minutes=args.train_minutes or 5.0, steps=args.train_steps, overrides=args.overrides
        )
        print(f"demo trained {trained.run.state.step} steps; run directory: {trained.run.run_dir}")
        print(f"  samples (DDIM, EMA weights): {trained.samples.png}")
        print(f"  loss curve: {trained.run.loss_plot}")
        return 0

    return run


@subcommand("data", "download or check a dataset")
def _data(parser: argparse.ArgumentParser) -> Runner:
    from hqdm.data import DATASET_NAMES

    actions = parser.add_subparsers(dest="action", required=True, metavar="{download,check}")
    download = actions.add_parser("download", help="fetch and verify a dataset into the cache")
    download.add_argument("name", choices=DATASET_NAMES)
    download.add_argument("--cache-dir", help="where to store it (default: the user cache hqdm searches)")
    check = actions.add_parser("check", help="report whether a dataset can be loaded, split by split")
    check.add_argument("name", choices=DATASET_NAMES)
    check.add_argument("--data-dir", help="folder to search first")

    def run(args: argparse.Namespace) -> int:
        from hqdm.data import check_dataset, download_dataset

        if args.action == "download":
            print(f"{args.name} is in {download_dataset(args.name, args.cache_dir)}")
            return 0
        report = check_dataset(args.name, args.data_dir)
        print(report.format())
        return 0 if report.ok else EXIT_USER_ERROR

    return run


@subcommand(
    "bench",
    "measure the quantum engine against PennyLane and TorchQuantum, or a training step of every model",
)
def _bench(parser: argparse.ArgumentParser) -> Runner:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{quantum,train-step,sample,fid}")
    quantum = kinds.add_parser(
        "quantum", help="circuits/s of hqdm vs PennyLane default.qubit and TorchQuantum, peak memory"
    )
    quantum.add_argument("--batches", default="128,896,6272", help="comma-separated batch sizes")
    quantum.add_argument("--ansatz", default="hqconv,fqconv", help="comma-separated ansatzes")
    quantum.add_argument("--pennylane-batch", type=int, default=128, help="largest batch run on PennyLane")
    quantum.add_argument(
        "--torchquantum-dir",
        default=".peers/torchquantum",
        help="folder made by scripts/install_torchquantum_peer.sh ('' skips TorchQuantum; an installed "
        "torchquantum is used too)",
    )
    quantum.add_argument(
        "--torchquantum-batch", type=int, default=896, help="largest batch run on TorchQuantum"
    )
    quantum.add_argument(
        "--seconds", type=float, default=3.0, help="minimum timing per measurement (at most 1 s for --depths)"
    )
    quantum.add_argument(
        "--depths", default="1,3,6,12", help="layer counts for the memory-vs-depth table ('' skips it)"
    )
    step = kinds.add_parser(
        "train-step", help="forward+backward+Adam per model and path (plain, fp32, bf16), GFLOP/s"
    )
    step.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    step.add_argument("--paths", default="plain,fp32,bf16", help="comma-separated: plain,fp32,bf16")
    step.add_argument("--batch", type=int, default=128)
    step.add_argument("--seconds", type=float, default=10.0, help="minimum timing per measurement")
    step.add_argument(
        "--rounds",
        type=_positive_int,
        default=1,
        help="measure every model this many times, in turn; report medians",
    )
    sample = kinds.add_parser("sample", help="model evaluations/s of DDIM and DDPM per path")
    sample.add_argument("--models", default="unet", help="comma-separated model names (default: unet)")
    sample.add_argument("--paths", default="plain,fp32,bf16", help="comma-separated: plain,fp32,bf16")
    sample.add_argument("--batch", type=int, default=256)
    sample.add_argument("--steps", type=_positive_int, default=10, help="model evaluations per timing")
    fid = kinds.add_parser("fid", help="images/s of the FID Inception network per path (plain, fp32, bf16)")
    fid.add_argument("--batch", type=int, default=100)
    fid.add_argument("--paths", default="plain,fp32,bf16", help="comma-separated: plain,fp32,bf16")
    fid.add_argument("--seconds", type=float, default=10.0, help="minimum timing per precision")
    for kind in (step, sample, fid):
        kind.add_argument(
            "--glibc-heap-defaults",
            action="store_true",
            help="measure with glibc's default heap settings instead of those hqdm's commands set",
        )
    for kind in (quantum, step, sample, fid):
        kind.add_argument(
            "--json", metavar="PATH", help="also write the raw measurements there (benchmarks/results/*.json)"
        )

    def run(args: argparse.Namespace) -> int:
        from hqdm import bench
        from hqdm.bench_results import command_line, make_record, utc_now, write_record

        started, tables = utc_now(), {}
        if args.kind == "quantum":
            tables["quantum"] = bench.quantum_benchmark(
                batches=tuple(int(b) for b in args.batches.split(",")),
                ansatzes=tuple(args.ansatz.split(",")),
                pennylane_batch=args.pennylane_batch,
                torchquantum_dir=args.torchquantum_dir,
                torchquantum_batch=args.torchquantum_batch,
                seconds=args.seconds,
            )
            if args.depths:
                tables["depth"] = bench.depth_memory_benchmark(
                    batch=max(int(b) for b in args.batches.split(",")),
                    depths=tuple(int(d) for d in args.depths.split(",")),
                    seconds=min(args.seconds, 1.0),
                )
        else:
            from hqdm import bench_compute

            keep_heap = not args.glibc_heap_defaults
            paths = _choices(args.paths, bench_compute.PATHS, "--paths")
            models = tuple(args.models.split(",")) if getattr(args, "models", None) else None
            if args.kind == "fid":
                tables["fid"] = bench_compute.fid_benchmark(
                    batch=args.batch, paths=paths, seconds=args.seconds, keep_heap=keep_heap
                )
            elif args.kind == "sample":
                tables["sample"] = bench_compute.sample_benchmark(
                    models or ("unet",), paths, batch=args.batch, steps=args.steps, keep_heap=keep_heap
                )
            else:
                tables["train-step"] = bench_compute.train_step_benchmark(
                    models, paths, batch=args.batch, seconds=args.seconds, rounds=args.rounds,
                    keep_heap=keep_heap,
                )  # fmt: skip
        if args.json:
            options = {k: v for k, v in vars(args).items() if k not in ("command", "kind", "run")}
            record = make_record(command_line(args.kind, options), started, tables)
            print(f"raw output: {write_record(args.json, record)}")
        return 0

    return run


def _metric_errors(run: Runner) -> Runner:
    """Report metric problems (missing FID network, bad weights file) like the other user errors."""

    def guarded(args: argparse.Namespace) -> int:
        from hqdm.metrics import MetricsError

        try:
            return run(args)
        except MetricsError as err:
            _report_error(err)
            return EXIT_USER_ERROR

    return guarded


@subcommand("evaluate", "score samples of a checkpoint's EMA model with FID, KID, IS and SSIM")
def _evaluate(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)")
    parser.add_argument("--num-samples", type=int, default=7000, help="generated = real images (7000)")
    parser.add_argument("--sampler", choices=_sampler_names(), default="ddpm")
    parser.add_argument("--steps", type=int, default=100, help="DDIM steps (DDPM always uses all timesteps)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    parser.add_argument("--metrics", default="fid,kid,is", help="comma-separated: fid,kid,is,ssim")
    parser.add_argument("--data-dir", help="folder holding the checkpoint's dataset (real images)")
    parser.add_argument("--inception-weights", help="TorchScript classifier for IS (docs/metrics.md)")
    parser.add_argument("--out", help="folder for evaluation.json/.md (default <run>/eval/<checkpoint>)")
    parser.add_argument("--seed", type=int, default=0, help="sampling noise, KID subsets, IS splits")
    parser.add_argument("--batch-size", type=int, default=100, help="images sampled and scored at once")
    parser.add_argument("--kid-subset-size", type=int, default=100, help="KID subset size (the paper's 100)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--no-ema", action="store_true", help="sample the online weights instead of the EMA weights"
    )
    _add_precision(parser, "of the sampling model (default: the one it was trained at)")
    parser.add_argument(
        "--fid-precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="of the FID network (docs/metrics.md)",
    )

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hqdm.experiments.evaluate import EvalSettings, evaluate_checkpoint, parse_metric_list
        from hqdm.train import resolve_checkpoint
        from hqdm.train.trainer import resolve_device

        settings = EvalSettings(
            num_samples=args.num_samples,
            sampler=args.sampler,
            steps=args.steps,
            eta=args.eta,
            metrics=parse_metric_list(args.metrics),
            seed=args.seed,
            batch_size=args.batch_size,
            kid_subset_size=args.kid_subset_size,
            feature_precision=args.fid_precision,
        )
        checkpoint = resolve_checkpoint(Path(args.checkpoint))
        result = evaluate_checkpoint(
            checkpoint,
            args.out or checkpoint.parent.parent / "eval" / checkpoint.name,
            settings,
            data_dir=args.data_dir,
            inception_weights=args.inception_weights,
            device=resolve_device(args.device, key="--device"),
            precision=args.precision,
            progress=True,
            use_ema=not args.no_ema,
        )
        print(result.markdown_path.read_text(encoding="utf-8").rstrip())
        print(f"  numbers, settings and versions: {result.json_path}")
        return 0

    return _metric_errors(run)


def _parse_digits(text: str) -> tuple[int, ...]:
    from hqdm.config import ConfigError

    try:
        digits = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--digits: expected comma-separated digits such as 0,1,7, got {text!r}") from None
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ConfigError(f"--digits: every digit must be in 0..9, got {text!r}")
    return digits


def _int_list(text: str, option: str) -> tuple[int, ...]:
    from hqdm.config import ConfigError

    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option}: expected comma-separated whole numbers such as 0,1,2, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise ConfigError(f"{option}: expected whole numbers >= 0, got {text!r}")
    return values


@subcommand("study", "the long-budget study: full training sets, paired seeds, FID/KID per epoch (resumable)")
def _study(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--dataset", required=True, help="mnist or fashion-mnist")
    parser.add_argument("--models", default="unet,qvunet-1hq", help="comma-separated model names")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument("--data-dir", help="folder holding the dataset files")
    parser.add_argument("--out", help="results folder (default results/study-<dataset>)")
    parser.add_argument("--epochs", type=_positive_int, default=10)
    parser.add_argument("--eval-epochs", default="1,2,5,10", help="epochs evaluated (must include the last)")
    parser.add_argument("--num-samples", type=_positive_int, default=2000, help="EMA samples per evaluation")
    parser.add_argument("--steps", type=_positive_int, default=100, help="DDIM steps per sample")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="training and sampling")
    parser.add_argument(
        "--fid-precision", choices=("fp32", "bf16"), default="bf16",
        help="of the FID network (bf16: FID within 0.11%% of fp32, twice as fast; docs/performance.md)",
    )  # fmt: skip
    parser.add_argument(
        "--train-only", action="store_true",
        help="train every cell and keep its evaluation epochs; a later run without it evaluates them",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hqdm.experiments.evaluate import EvalSettings
        from hqdm.experiments.study import StudySettings, run_study

        evaluation = EvalSettings(
            num_samples=args.num_samples, sampler="ddim", steps=args.steps, metrics=("fid", "kid"),
            batch_size=250, feature_precision=args.fid_precision,
        )  # fmt: skip
        settings = StudySettings(
            epochs=args.epochs,
            eval_epochs=_int_list(args.eval_epochs, "--eval-epochs"),
            grid_epochs=tuple(e for e in (1, 5, 10) if e <= args.epochs),
            precision=args.precision,
            evaluation=evaluation,
        )
        metrics = run_study(
            args.dataset,
            tuple(name.strip() for name in args.models.split(",") if name.strip()),
            _int_list(args.seeds, "--seeds"),
            Path(args.out or f"results/study-{args.dataset}"),
            settings=settings,
            data_dir=args.data_dir,
            progress=True,
            train_only=args.train_only,
        )
        print(f"metrics: {metrics}")
        print(f"report: {metrics.with_name('report.md')} (plot: {metrics.with_name('fid_vs_epoch.png')})")
        return 0

    return run


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

    return _metric_errors(run)


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
    measure.add_argument("--noise", default="sycamore-2019,h2-2023", help="comma-separated levels ('' none)")
    measure.add_argument("--noise-shots", default="exact", help="shots of the noisy settings (default exact)")
    measure.add_argument("--trajectories", type=_positive_int, default=32, help="per circuit, large circuits")
    measure.add_argument("--seeds", default="0,1,2", help="comma-separated sampling and shot seeds")
    measure.add_argument("--num-samples", type=_positive_int, default=1000, help="images per cell")
    measure.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps")
    measure.add_argument("--batch-size", type=_positive_int, default=250)
    measure.add_argument("--data-dir", help="folder holding the checkpoint's dataset (real images)")
    measure.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    measure.add_argument("--fid-precision", choices=("fp32", "bf16"), default="fp32")
    qasm = actions.add_parser("qasm", help="every circuit of a checkpoint as OpenQASM 3 with trained angles")
    qasm.add_argument("checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)")
    qasm.add_argument("--out", required=True, help="folder for the .qasm files and circuits.json")
    qasm.add_argument("--no-ema", action="store_true", help="the online weights instead of the EMA weights")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hqdm.train import resolve_checkpoint
        from hqdm.train.trainer import resolve_device

        if args.action == "qasm":
            from hqdm.models.qasm_export import export_circuits
            from hqdm.train.sampling import load_checkpoint_model

            checkpoint = resolve_checkpoint(Path(args.checkpoint))
            model, _ = load_checkpoint_model(
                checkpoint, use_ema=not args.no_ema, device=resolve_device("cpu")
            )
            manifest = export_circuits(model, args.out, source=str(checkpoint))
            print(f"OpenQASM 3 programs of every circuit in {args.out}; manifest: {manifest}")
            return 0
        from hqdm.experiments.hardware import HardwareSettings, parse_shots, run_hardware_study

        noise_shots = parse_shots(args.noise_shots)  # every setting is checked before any work
        settings = HardwareSettings(
            shots=parse_shots(args.shots), noise_levels=tuple(n for n in args.noise.split(",") if n.strip()),
            noise_shots=noise_shots[0] if noise_shots else None, trajectories=args.trajectories,
            seeds=_int_list(args.seeds, "--seeds"), num_samples=args.num_samples, steps=args.steps,
            batch_size=args.batch_size, feature_precision=args.fid_precision,
        )  # fmt: skip
        result = run_hardware_study(
            resolve_checkpoint(Path(args.checkpoint)), args.out, settings, data_dir=args.data_dir,
            device=resolve_device(args.device, key="--device"), progress=True,
        )  # fmt: skip
        print((result.out_dir / "hardware.md").read_text(encoding="utf-8").rstrip())
        return 0

    return _metric_errors(run)


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from hqdm import __version__

    parser = argparse.ArgumentParser(prog="hqdm", description="Hybrid quantum-classical diffusion models.")
    parser.add_argument("--version", action="version", version=f"hqdm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, configure in _SUBCOMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=configure(sub))
    return parser


def _report_error(err: BaseException) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hqdm.train.memory import keep_freed_memory

    keep_freed_memory()
    user_errors = _user_errors()
    try:
        code = args.run(args)
    except user_errors as err:
        _report_error(err)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("hqdm: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130
    if code == 0:  # after a failure, no barrier: the failed rank would never reach it
        from hqdm.train.distributed import leave_process_group

        leave_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
