"""Subcommands that train a model, draw from it, export it and score it: train, sample, export,
evaluate, score, eps-error."""

from __future__ import annotations

import argparse

from hqdm.cli import Runner, subcommand
from hqdm.cli.errors import metric_errors
from hqdm.cli.options import add_precision, int_list, positive_int, sampler_names


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
        "--max-steps", type=positive_int, help="stop (with a checkpoint) after this many optimiser steps"
    )
    add_precision(parser, "sets training.precision (default: the config's)")

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


@subcommand("sample", "draw samples from a checkpoint into a PNG grid and an .npz")
def _sample(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument(
        "checkpoint", nargs="?", help="checkpoint directory, or a run directory (its newest checkpoint)"
    )
    parser.add_argument(
        "--pretrained", metavar="NAME_OR_DIR", help="sample a pretrained model instead of a checkpoint"
    )
    parser.add_argument("-n", "--num-images", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--sampler", choices=sampler_names(), default="ddim")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM always uses all timesteps)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    parser.add_argument("--out", required=True, help="folder for samples.png and samples.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-ema", action="store_true", help="use the online weights instead of the EMA weights"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    add_precision(parser, "of the classical layers (default: the one the model was trained at)")
    parser.add_argument("--shots", type=int, help="read every circuit out with N shots (docs/hardware.md)")
    parser.add_argument(
        "--noise", help="hardware noise: a level (sycamore-2019, h2-2023, random-readout) or KEY=RATE,..."
    )

    def run(args: argparse.Namespace) -> int:
        from hqdm.config import ConfigError
        from hqdm.experiments.hardware import measured_model_factory
        from hqdm.experiments.hardware_settings import measurement_from_options
        from hqdm.train import sample_to_folder
        from hqdm.train.distributed import is_main_process
        from hqdm.train.setup import resolve_device

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


@subcommand("evaluate", "score samples of a checkpoint's EMA model with FID, KID, IS and SSIM")
def _evaluate(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("checkpoint", help="checkpoint directory, or a run directory (its newest checkpoint)")
    parser.add_argument("--num-samples", type=int, default=7000, help="generated = real images (7000)")
    parser.add_argument("--sampler", choices=sampler_names(), default="ddpm")
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
    add_precision(parser, "of the sampling model (default: the one it was trained at)")
    parser.add_argument(
        "--fid-precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="of the FID network (docs/metrics.md)",
    )

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hqdm.experiments.evaluate_checkpoint import EvalSettings, evaluate_checkpoint, parse_metric_list
        from hqdm.train import resolve_checkpoint
        from hqdm.train.setup import resolve_device

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

    return metric_errors(run)


@subcommand("score", "score saved samples (or real images) against a dataset split with FID and KID")
def _score(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("generated", help="an .npz from `hqdm sample`, or DATASET:SPLIT for real images")
    parser.add_argument("--against", required=True, help="the reference set, e.g. fashion-mnist:test")
    parser.add_argument("--num-generated", type=positive_int, help="score the first N images (default all)")
    parser.add_argument("--num-real", type=positive_int, help="a random N of the reference (default all)")
    parser.add_argument("--metrics", default="fid,kid", help="comma-separated: fid,kid,ssim")
    parser.add_argument("--resize", default="torch-bilinear", help="torch-bilinear or tf1-bilinear")
    parser.add_argument("--fid-precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--data-dir", help="folder holding the datasets")
    parser.add_argument("--seed", type=int, default=0, help="picks real subsets and KID subsets")
    parser.add_argument("--kid-subset-size", type=positive_int, default=100)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--json", help="also write the scores and what was scored to this file")

    def run(args: argparse.Namespace) -> int:
        import json
        from pathlib import Path

        from hqdm.config import ConfigError
        from hqdm.experiments.evaluate_checkpoint import parse_metric_list
        from hqdm.experiments.score_samples import load_image_set, score_image_sets
        from hqdm.files import atomic_write_text
        from hqdm.train.setup import resolve_device

        metrics = parse_metric_list(args.metrics)
        if "is" in metrics:
            raise ConfigError("--metrics: IS needs a classifier; use `hqdm evaluate --inception-weights`")
        device = resolve_device(args.device, key="--device")
        sets = [
            load_image_set(source, num_images=n, seed=args.seed, data_dir=args.data_dir)
            for source, n in ((args.generated, args.num_generated), (args.against, args.num_real))
        ]
        record = score_image_sets(
            *sets,
            metrics=metrics,
            resize=args.resize,
            feature_precision=args.fid_precision,
            kid_subset_size=args.kid_subset_size,
            seed=args.seed,
            device=device,
            progress=True,
        )
        m = record["metrics"]
        scores = [f"FID {m['fid']:.2f}"] if "fid" in m else []
        scores += [f"KID {m['kid_mean']:.4f} +- {m['kid_std']:.4f}"] if "kid_mean" in m else []
        scores += [f"SSIM {m['ssim']:.4f}"] if "ssim" in m else []
        print(
            f"{', '.join(scores)}: {m['num_generated']} of {args.generated} against {m['num_real']} of "
            f"{args.against} ({args.resize} resize, FID network in {args.fid_precision})"
        )
        if args.json:
            atomic_write_text(Path(args.json), json.dumps(record, indent=2) + "\n")
        return 0

    return metric_errors(run)


@subcommand(
    "eps-error", "how well checkpoints predict the noise per timestep: MSE and mean offset, EMA vs online"
)
def _eps_error(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("checkpoints", nargs="+", help="checkpoint directories or kept epochs of one dataset")
    parser.add_argument("--data-dir", help="folder holding the checkpoints' dataset")
    parser.add_argument("--split", default="test", help="real images to noise (default test)")
    parser.add_argument("-n", "--num-images", type=positive_int, default=256, help="a seeded random subset")
    parser.add_argument(
        "--timesteps", default="0,50,200,500,800,950,999", help="comma-separated timesteps to score"
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the images and the noise")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hqdm.config import ConfigError, config_from_dict
        from hqdm.data import load_dataset
        from hqdm.experiments.eps_error import checkpoint_eps_errors, format_eps_errors
        from hqdm.train.checkpoint import read_state, resolve_checkpoint

        folders = [resolve_checkpoint(Path(c)) for c in args.checkpoints]
        datasets = {config_from_dict(read_state(f)[1], check_names=False).data.dataset for f in folders}
        if len(datasets) > 1:
            raise ConfigError(
                f"eps-error: the checkpoints were trained on different datasets {sorted(datasets)}"
            )
        x0 = load_dataset(
            datasets.pop(), args.split, data_dir=args.data_dir, subset=args.num_images, subset_seed=args.seed
        ).to_model_range()
        timesteps = int_list(args.timesteps, "--timesteps")
        rows = []
        for folder in folders:
            rows += checkpoint_eps_errors(folder, x0, timesteps=timesteps, seed=args.seed)
        print(
            f"noise prediction error, MSE / mean offset of eps_hat - eps, on {len(x0)} {args.split} "
            f"images (seed {args.seed}); weights in fp32"
        )
        for line in format_eps_errors(rows):
            print(line)
        return 0

    return run
