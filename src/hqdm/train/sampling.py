"""Draw samples from a saved checkpoint: a PNG grid and an ``.npz`` of uint8 images.

Image ``i`` of a request is generated from its own noise generator, seeded from ``(seed, i)``. An image
therefore does not depend on the batch it was drawn in nor on the process that drew it, so generation
can be sharded over ``torchrun`` processes (:func:`generate_sharded`) and the gathered result equals the
single-process one image for image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hqdm.config import ConfigError, DiffusionConfig, config_from_dict
from hqdm.diffusion import GaussianNoise, make_noise_source, make_sampler, make_schedule
from hqdm.diffusion.noise import NoiseSource
from hqdm.diffusion.schedules import NoiseSchedule
from hqdm.precision import set_precision
from hqdm.train.checkpoint import (
    CheckpointError,
    load_weights,
    read_state,
    resolve_checkpoint,
    verify_checkpoint,
)
from hqdm.train.distributed import DistContext, current_context, join_process_group
from hqdm.train.io import images_to_uint8, save_grid_png, save_samples_npz
from hqdm.train.trainer import ModelFactory, default_model_factory, resolve_device

__all__ = [
    "PerImageNoise",
    "SampleResult",
    "generate_sharded",
    "image_seed",
    "load_checkpoint_model",
    "sample_checkpoint",
    "sample_pretrained",
]


@dataclass(frozen=True)
class SampleResult:
    checkpoint: Path
    png: Path
    npz: Path
    num_images: int


def load_checkpoint_model(
    checkpoint: Path,
    *,
    use_ema: bool = True,
    device: torch.device | None = None,
    precision: str | None = None,
    model_factory: ModelFactory = default_model_factory,
) -> tuple[nn.Module, dict[str, object]]:
    """Rebuild a checkpoint's model (EMA weights by default) in eval mode; return it and its config dict.

    ``precision`` (``auto``, ``fp32``, ``bf16``) defaults to the one the model was trained at."""
    checkpoint = resolve_checkpoint(Path(checkpoint))
    if (reason := verify_checkpoint(checkpoint)) is not None:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} is damaged: {reason}")
    state, raw = read_state(checkpoint)
    # validated when the run started; the factory rejects an unknown name itself
    cfg = config_from_dict(raw, check_names=False)
    model = model_factory(state.model_name, cfg)
    load_weights(model, checkpoint / ("ema.safetensors" if use_ema else "model.safetensors"))
    # "auto", not the training device: a checkpoint trained on a GPU must still sample on a CPU-only machine
    device = device or resolve_device("auto")
    model.to(device).eval()
    try:
        set_precision(model, precision or cfg.training.precision, device)
    except ValueError as err:
        raise ConfigError(f"--precision: {err}") from err
    return model, raw


def image_seed(seed: int, index: int) -> int:
    """Seed of image ``index`` of a request seeded ``seed``: well mixed, so nearby (seed, index) pairs
    never share a stream (``seed + index`` would make seed 0's image 1 equal seed 1's image 0)."""
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    return int(np.random.SeedSequence([seed % 2**64, index]).generate_state(1, dtype=np.uint64)[0])


class PerImageNoise:
    """Noise source whose row ``k`` is drawn from ``base`` with ``generators[k]`` (CPU generators).

    Samplers draw the noise of a whole batch at once; with this source each image's stream is its own,
    whichever batch (or process) it is generated in. The sampler's own ``generator`` argument is unused.
    """

    def __init__(self, generators: list[torch.Generator], base: NoiseSource | None = None) -> None:
        self.generators = generators
        self.base = base if base is not None else GaussianNoise()

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(f"asked for {shape[0]} noise rows but holds {len(self.generators)} generators")
        row = (1, *shape[1:])
        rows = [self.base.sample(row, generator=g, device="cpu", dtype=dtype) for g in self.generators]
        return torch.cat(rows).to(device if device is not None else "cpu")

    def __repr__(self) -> str:
        return f"PerImageNoise({self.base!r}, {len(self.generators)} generators)"


def generate_sharded(
    model: nn.Module,
    sampler: str,
    schedule: NoiseSchedule,
    *,
    num_images: int,
    image_shape: tuple[int, int, int],
    seed: int,
    sampler_options: Mapping[str, object] | None = None,
    noise: NoiseSource | None = None,
    batch_size: int = 256,
    dist: DistContext | None = None,
    progress: bool = False,
) -> Tensor | None:
    """Generate images ``0 .. num_images-1`` (image ``i`` from :func:`image_seed` ``(seed, i)``, its
    noise drawn from ``noise``, Gaussian by default).

    Under a process group every rank generates its contiguous share and rank 0 receives all of them:
    a uint8 CPU tensor (N, C, H, W), in index order. Other ranks return None. Without a group (or with
    ``dist`` of one process) this is plain single-process generation with the same result.
    """
    ctx = dist or current_context()
    device = next(model.parameters()).device
    lo, hi = ctx.bounds(num_images)
    shards = [torch.zeros((0, *image_shape), dtype=torch.uint8)]
    for start in range(lo, hi, batch_size):
        indices = range(start, min(start + batch_size, hi))
        streams = PerImageNoise([torch.Generator().manual_seed(image_seed(seed, i)) for i in indices], noise)
        chosen = make_sampler(sampler, schedule, noise=streams, **dict(sampler_options or {}))
        images = chosen.sample(model, (len(indices), *image_shape), device=device, progress=progress)
        shards.append(torch.from_numpy(images_to_uint8(images)))
    # gathered on the model's device: NCCL only moves CUDA tensors
    gathered = ctx.gather_to_main(torch.cat(shards).to(device))
    return gathered.cpu() if gathered is not None else None


def sample_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    num_images: int = 64,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    use_ema: bool = True,
    device: torch.device | None = None,
    precision: str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    model_factory: ModelFactory = default_model_factory,
) -> SampleResult:
    """Sample ``num_images`` from a checkpoint (or a run dir's newest) into ``out_dir``/samples.{png,npz}.

    Under ``torchrun`` the images are shared out over the processes (see :func:`generate_sharded`) and
    rank 0 writes the files; every rank returns once they are complete."""
    if num_images <= 0:
        raise ConfigError(f"-n: the number of images must be positive, got {num_images}")
    resolved = resolve_checkpoint(Path(checkpoint))
    ctx, device = join_process_group(device or resolve_device("auto"))
    model, raw = load_checkpoint_model(
        resolved, use_ema=use_ema, device=device, precision=precision, model_factory=model_factory
    )
    cfg = config_from_dict(raw, check_names=False)
    draw = _Draw(num_images, sampler, steps, eta, seed, batch_size, progress)
    return _sample_to_files(model, cfg.diffusion, cfg.model.in_channels, resolved, Path(out_dir), draw, ctx)


def sample_pretrained(
    source: str | Path,
    out_dir: str | Path,
    *,
    num_images: int = 64,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    device: torch.device | None = None,
    precision: str = "auto",
    batch_size: int = 256,
    progress: bool = False,
) -> SampleResult:
    """Like :func:`sample_checkpoint`, for a pretrained folder or a shipped model's name
    (:mod:`hqdm.models.pretrained`); seeds give the same images as from the checkpoint it was saved from."""
    from hqdm.models.pretrained import load_pretrained, read_pretrained_config

    if num_images <= 0:
        raise ConfigError(f"-n: the number of images must be positive, got {num_images}")
    folder, config = read_pretrained_config(source)
    ctx, device = join_process_group(device or resolve_device("auto"))
    model = load_pretrained(folder, device=device)
    try:
        set_precision(model, precision, device)
    except ValueError as err:
        raise ConfigError(f"--precision: {err}") from err
    diffusion = config_from_dict({"diffusion": config.get("diffusion", {})}, check_names=False).diffusion
    draw = _Draw(num_images, sampler, steps, eta, seed, batch_size, progress)
    return _sample_to_files(model, diffusion, config["in_channels"], folder, Path(out_dir), draw, ctx)


@dataclass(frozen=True)
class _Draw:
    num_images: int
    sampler: str
    steps: int
    eta: float
    seed: int
    batch_size: int
    progress: bool


def _sample_to_files(
    model: nn.Module,
    diffusion: DiffusionConfig,
    in_channels: int,
    source: Path,
    out: Path,
    draw: _Draw,
    ctx: DistContext,
) -> SampleResult:
    schedule = make_schedule(diffusion.schedule, diffusion.num_timesteps, **diffusion.schedule_options)
    options: dict[str, object] = {"steps": draw.steps, "eta": draw.eta} if draw.sampler == "ddim" else {}
    try:
        make_sampler(draw.sampler, schedule, **options)  # bad names and options fail before any work
    except (KeyError, ValueError) as err:
        raise ConfigError(f"--sampler/--steps/--eta: {err}") from err
    images = generate_sharded(
        model,
        draw.sampler,
        schedule,
        num_images=draw.num_images,
        image_shape=(in_channels, 28, 28),
        seed=draw.seed,
        sampler_options=options,
        noise=make_noise_source(diffusion.noise, **diffusion.noise_options),  # as in training
        batch_size=draw.batch_size,
        dist=ctx,
        progress=draw.progress and ctx.is_main,
    )
    png, npz = out / "samples.png", out / "samples.npz"
    if images is not None:
        save_samples_npz(images.numpy(), npz)
        save_grid_png(images.numpy(), png)
    ctx.barrier()
    return SampleResult(source, png, npz, draw.num_images)
