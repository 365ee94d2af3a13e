"""Subcommands that look at what is installed and how fast it runs: models, data, bench."""

from __future__ import annotations

import argparse

from hqdm.cli import Runner, subcommand
from hqdm.cli.errors import EXIT_USER_ERROR
from hqdm.cli.options import choices_list, int_list, positive_int


@subcommand("models", "list the registered models and their parameter counts")
def _models(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument(
        "--channels", type=int, default=1, help="image channels (1 for MNIST, 3 for PathMNIST)"
    )
    parser.add_argument(
        "--qpu-cost", action="store_true",
        help="instead: circuit executions of each hybrid per forward, sampled image and training step",
    )  # fmt: skip
    parser.add_argument("--batch", type=positive_int, default=1, help="with --qpu-cost: the batch size")
    parser.add_argument("--shots", type=positive_int, help="with --qpu-cost: also total shots at N each")
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
    kinds = parser.add_subparsers(
        dest="kind", required=True, metavar="{quantum,train-step,sample,fid,workers,floor,readout}"
    )
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
        type=positive_int,
        default=1,
        help="measure every model this many times, in turn; report medians",
    )
    sample = kinds.add_parser("sample", help="model evaluations/s of DDIM and DDPM per path")
    sample.add_argument("--models", default="unet", help="comma-separated model names (default: unet)")
    sample.add_argument("--paths", default="plain,fp32,bf16", help="comma-separated: plain,fp32,bf16")
    sample.add_argument("--batch", default="256", help="comma-separated batch sizes, e.g. 64,128,256")
    sample.add_argument(
        "--threads", type=positive_int, help="of the measuring process (default: this shell's settings)"
    )
    sample.add_argument("--steps", type=positive_int, default=10, help="model evaluations per timing")
    fid = kinds.add_parser("fid", help="images/s of the FID Inception network per path (plain, fp32, bf16)")
    fid.add_argument("--batch", type=int, default=100)
    fid.add_argument("--paths", default="plain,fp32,bf16", help="comma-separated: plain,fp32,bf16")
    fid.add_argument("--seconds", type=float, default=10.0, help="minimum timing per precision")
    workers = kinds.add_parser(
        "workers", help="training steps/s of one process with every core vs parallel processes (--workers)"
    )
    workers.add_argument("--models", default="unet,qvunet-1hq", help="comma-separated model names")
    workers.add_argument("--paths", default="bf16", help="comma-separated: fp32,bf16")
    workers.add_argument("--batch", type=int, default=128)
    workers.add_argument("--seconds", type=float, default=10.0, help="minimum timing per measurement")
    workers.add_argument("--workers", type=positive_int, help="parallel processes (default: one per core)")
    floor = kinds.add_parser(
        "floor",
        help="where a training step's time goes, by op class, and the step if only the matrix work took time",
    )
    floor.add_argument("--models", default="unet", help="comma-separated model names (default: unet)")
    floor.add_argument("--path", choices=("fp32", "bf16"), default="bf16", help="the path profiled")
    floor.add_argument("--batch", type=int, default=128)
    floor.add_argument("--seconds", type=float, default=10.0, help="minimum timing per step measurement")
    floor.add_argument("--steps", type=positive_int, default=3, help="training steps profiled")
    readout = kinds.add_parser(
        "readout",
        help="circuits/s of each hardware readout (exact, shots, noise levels) of the 12-qubit HQConv",
    )
    readout.add_argument(
        "--settings",
        help="comma-separated: exact, shots-N, noise level names (default: exact,shots-1024 and every level)",
    )
    readout.add_argument("--batch", type=positive_int, default=256, help="circuits a call")
    readout.add_argument("--seconds", type=float, default=3.0, help="minimum timing per setting")
    for kind in (step, sample, fid, workers, floor):
        kind.add_argument(
            "--glibc-heap-defaults",
            action="store_true",
            help="measure with glibc's default heap settings instead of those hqdm's commands set",
        )
    for kind in (quantum, step, sample, fid, workers, floor, readout):
        kind.add_argument(
            "--json", metavar="PATH", help="also write the raw measurements there (benchmarks/results/*.json)"
        )

    def run(args: argparse.Namespace) -> int:
        from hqdm.bench import quantum
        from hqdm.bench.results import command_line, make_record, utc_now, write_record

        started, tables = utc_now(), {}
        if args.kind == "quantum":
            tables["quantum"] = quantum.quantum_benchmark(
                batches=tuple(int(b) for b in args.batches.split(",")),
                ansatzes=tuple(args.ansatz.split(",")),
                pennylane_batch=args.pennylane_batch,
                torchquantum_dir=args.torchquantum_dir,
                torchquantum_batch=args.torchquantum_batch,
                seconds=args.seconds,
            )
            if args.depths:
                tables["depth"] = quantum.depth_memory_benchmark(
                    batch=max(int(b) for b in args.batches.split(",")),
                    depths=tuple(int(d) for d in args.depths.split(",")),
                    seconds=min(args.seconds, 1.0),
                )
        elif args.kind == "readout":
            from hqdm.bench.readout import DEFAULT_SETTINGS, readout_benchmark

            settings = tuple(args.settings.split(",")) if args.settings else DEFAULT_SETTINGS
            tables["readout"] = readout_benchmark(settings, args.batch, args.seconds)
        else:
            from hqdm.bench import compute

            keep_heap = not args.glibc_heap_defaults
            paths = choices_list(args.paths, compute.PATHS, "--paths") if hasattr(args, "paths") else ()
            models = tuple(args.models.split(",")) if getattr(args, "models", None) else None
            if args.kind == "fid":
                tables["fid"] = compute.fid_benchmark(
                    batch=args.batch, paths=paths, seconds=args.seconds, keep_heap=keep_heap
                )
            elif args.kind == "floor":
                from hqdm.bench.floor import floor_benchmark

                tables["floor"] = floor_benchmark(
                    models or ("unet",), args.path, batch=args.batch, seconds=args.seconds, steps=args.steps,
                    keep_heap=keep_heap,
                )  # fmt: skip
            elif args.kind == "workers":
                from hqdm.bench.workers import workers_benchmark

                tables["workers"] = workers_benchmark(
                    models, paths, batch=args.batch, seconds=args.seconds, workers=args.workers,
                    keep_heap=keep_heap,
                )  # fmt: skip
            elif args.kind == "sample":
                tables["sample"] = compute.sample_benchmark(
                    models or ("unet",), paths, batches=int_list(args.batch, "--batch"), steps=args.steps,
                    threads=args.threads, keep_heap=keep_heap,
                )  # fmt: skip
            else:
                tables["train-step"] = compute.train_step_benchmark(
                    models, paths, batch=args.batch, seconds=args.seconds, rounds=args.rounds,
                    keep_heap=keep_heap,
                )  # fmt: skip
        if args.json:
            options = {k: v for k, v in vars(args).items() if k not in ("command", "kind", "run")}
            record = make_record(command_line(args.kind, options), started, tables)
            print(f"raw output: {write_record(args.json, record)}")
        return 0

    return run
