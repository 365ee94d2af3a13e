"""The demo subcommand: shipped models side by side, or a few minutes of training."""

from __future__ import annotations

import argparse

from hqdm.cli import Runner, subcommand
from hqdm.cli.options import positive_float, positive_int


@subcommand("demo", "draw from a shipped hybrid and its classical twin side by side (or train a small one)")
def _demo(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--out", default="hqdm-demo", help="output folder (default ./hqdm-demo)")
    parser.add_argument(
        "--models", help="comma-separated pretrained names or folders (default: those of "
        "fashion-mnist-1hq,fashion-mnist-unet that are shipped)",
    )  # fmt: skip
    parser.add_argument("-n", "--num-images", type=positive_int, default=16, help="images per model")
    parser.add_argument("--ddim-steps", type=positive_int, default=50, help="DDIM steps (default 50)")
    parser.add_argument(
        "--eta", type=float, default=1.0, help="DDIM eta (default 1: fresh noise each step; 0: deterministic)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-minutes", type=positive_float,
        help="instead: train a small hybrid on the shipped data subset for N minutes, then sample",
    )  # fmt: skip
    parser.add_argument(
        "--train-steps", type=positive_int, help="with --train-minutes: stop after this many steps"
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
                args.out, models=models, num_images=args.num_images, steps=args.ddim_steps, eta=args.eta,
                seed=args.seed,
            )  # fmt: skip
            print(
                f"drew {result.num_images} images (seed {args.seed}, DDIM {args.ddim_steps} steps, "
                f"eta {args.eta:g}) from"
            )
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
