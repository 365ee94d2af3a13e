"""Draw samples from a checkpoint or a pretrained model: a PNG grid and an ``.npz`` of uint8 images.

:func:`load_pipeline` builds the :class:`~hqdm.diffusion.SamplingPipeline` of a checkpoint or pretrained
model; :func:`generate_sharded` shares a request out over ``torchrun`` processes, and because every image
has its own noise stream the gathered result equals the single-process one image for image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from hqdm.config import ConfigError, config_from_dict
from hqdm.diffusion import SamplingPipeline, make_noise_source, make_schedule
from hqdm.models.pretrained import load_pretrained, read_pretrained_config
from hqdm.precision import set_precision
from hqdm.progress import progress_bar
from hqdm.registry import UnknownNameError
from hqdm.train.checkpoint import (
    CheckpointError,
    load_weights,
    read_state,
    resolve_checkpoint,
    verify_checkpoint,
)
from hqdm.train.distributed import DistContext, current_context, join_process_group
from hqdm.train.io import save_grid_png, save_samples_npz
from hqdm.train.setup import ModelFactory, default_model_factory, resolve_device

__all__ = [
    "SampleResult",
    "generate_sharded",
    "load_checkpoint_model",
    "load_pipeline",
    "sample_to_folder",
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
    model = model_factory(dataclasses.replace(cfg.model, name=state.model_name))
    load_weights(model, checkpoint / ("ema.safetensors" if use_ema else "model.safetensors"))
    # "auto", not the training device: a checkpoint trained on a GPU must still sample on a CPU-only machine
    device = device or resolve_device("auto")
    model.to(device).eval()
    try:
        set_precision(model, precision or cfg.training.precision, device)
    except UnknownNameError as err:
        raise ConfigError(f"--precision: {err}") from err
    return model, raw


def generate_sharded(
    pipe: SamplingPipeline,
    *,
    num_images: int,
    seed: int,
    batch_size: int = 256,
    dist: DistContext | None = None,
    progress: bool = False,
) -> Tensor | None:
    """Images ``0 .. num_images-1`` of ``seed`` drawn by ``pipe``, shared out over a process group.

    Every rank draws its contiguous share and rank 0 receives all of them: a uint8 CPU tensor
    (N, C, H, W), in index order; other ranks return None. Without a group (or with ``dist`` of one
    process) this is ``pipe(num_images, seed=seed)``: images do not depend on how they are shared out.
    """
    ctx = dist or current_context()
    lo, hi = ctx.bounds(num_images)
    bar = progress_bar(hi - lo, desc="sampling", unit="image", enabled=progress)
    try:
        shards = [torch.zeros((0, *pipe.image_shape), dtype=torch.uint8)]
        shards += pipe.batches(range(lo, hi), seed=seed, batch_size=batch_size, on_batch=bar.update)
    finally:
        bar.close()
    # gathered on the model's device: NCCL only moves CUDA tensors
    gathered = ctx.gather_to_main(torch.cat(shards).to(pipe.device))
    return gathered.cpu() if gathered is not None else None


def load_pipeline(
    source: str | Path,
    *,
    pretrained: bool = False,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    use_ema: bool = True,
    device: torch.device | None = None,
    precision: str | None = None,
    model_factory: ModelFactory = default_model_factory,
) -> tuple[SamplingPipeline, Path]:
    """A sampling pipeline for a checkpoint (or a run folder's newest) or, with ``pretrained``, for a
    pretrained folder or a shipped model's name; also the resolved source folder.

    The pipeline draws with the noise source and schedule the model was trained with; ``precision``
    defaults to the training precision for a checkpoint and to ``auto`` for a pretrained model."""
    device = device or resolve_device("auto")
    if pretrained:
        folder, config = read_pretrained_config(source)
        model = load_pretrained(folder, device=device)
        try:
            set_precision(model, precision or "auto", device)
        except UnknownNameError as err:
            raise ConfigError(f"--precision: {err}") from err
        diffusion = config_from_dict({"diffusion": config.get("diffusion", {})}, check_names=False).diffusion
        image_shape = (config["in_channels"], config["image_size"], config["image_size"])
    else:
        folder = resolve_checkpoint(Path(source))
        model, raw = load_checkpoint_model(
            folder, use_ema=use_ema, device=device, precision=precision, model_factory=model_factory
        )
        cfg = config_from_dict(raw, check_names=False)
        diffusion = cfg.diffusion
        image_shape = (cfg.model.in_channels, 28, 28)
    try:
        pipe = SamplingPipeline(
            model,
            make_schedule(diffusion.schedule, diffusion.num_timesteps, **diffusion.schedule_options),
            image_shape=image_shape,
            sampler=sampler,
            steps=steps,
            eta=eta,
            noise=make_noise_source(diffusion.noise, **diffusion.noise_options),  # as in training
        )
    except (UnknownNameError, ValueError) as err:
        raise ConfigError(f"--sampler/--steps/--eta: {err}") from err
    return pipe, folder


def sample_to_folder(
    source: str | Path,
    out_dir: str | Path,
    *,
    pretrained: bool = False,
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
    """Sample ``num_images`` into ``out_dir``/samples.{png,npz} from a checkpoint, or with ``pretrained``
    from a pretrained folder or shipped name (see :func:`load_pipeline`).

    Under ``torchrun`` the images are shared out over the processes (see :func:`generate_sharded`) and
    rank 0 writes the files; every rank returns once they are complete."""
    if num_images <= 0:
        raise ConfigError(f"-n: the number of images must be positive, got {num_images}")
    ctx, device = join_process_group(device or resolve_device("auto"))
    pipe, folder = load_pipeline(
        source, pretrained=pretrained, sampler=sampler, steps=steps, eta=eta, use_ema=use_ema,
        device=device, precision=precision, model_factory=model_factory,
    )  # fmt: skip
    images = generate_sharded(
        pipe,
        num_images=num_images,
        seed=seed,
        batch_size=batch_size,
        dist=ctx,
        progress=progress and ctx.is_main,
    )
    out = Path(out_dir)
    png, npz = out / "samples.png", out / "samples.npz"
    if images is not None:
        save_samples_npz(images.numpy(), npz)
        save_grid_png(images.numpy(), png)
    ctx.barrier()
    return SampleResult(folder, png, npz, num_images)
