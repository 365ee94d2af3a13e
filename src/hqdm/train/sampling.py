"""Draw samples from a saved checkpoint: a PNG grid and an ``.npz`` of uint8 images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hqdm.config import ConfigError, config_from_dict
from hqdm.diffusion import GaussianNoise, make_sampler, make_schedule
from hqdm.train.checkpoint import load_weights, read_state, resolve_checkpoint
from hqdm.train.io import images_to_uint8, save_grid_png, save_samples_npz
from hqdm.train.trainer import ModelFactory, default_model_factory, resolve_device

__all__ = ["SampleResult", "load_checkpoint_model", "sample_checkpoint"]


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
    model_factory: ModelFactory = default_model_factory,
) -> tuple[nn.Module, dict[str, object]]:
    """Rebuild a checkpoint's model (EMA weights by default) in eval mode; return it and its config dict."""
    checkpoint = resolve_checkpoint(Path(checkpoint))
    state, raw = read_state(checkpoint)
    # validated when the run started; the factory rejects an unknown name itself
    cfg = config_from_dict(raw, check_names=False)
    model = model_factory(state.model_name, cfg)
    load_weights(model, checkpoint / ("ema.safetensors" if use_ema else "model.safetensors"))
    # "auto", not the training device: a checkpoint trained on a GPU must still sample on a CPU-only machine
    model.to(device or resolve_device("auto")).eval()
    return model, raw


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
    batch_size: int = 256,
    progress: bool = False,
    model_factory: ModelFactory = default_model_factory,
) -> SampleResult:
    """Sample ``num_images`` from a checkpoint (or a run dir's newest) into ``out_dir``/samples.{png,npz}."""
    if num_images <= 0:
        raise ConfigError(f"-n: the number of images must be positive, got {num_images}")
    resolved = resolve_checkpoint(Path(checkpoint))
    model, raw = load_checkpoint_model(resolved, use_ema=use_ema, device=device, model_factory=model_factory)
    cfg = config_from_dict(raw, check_names=False)
    schedule = make_schedule(
        cfg.diffusion.schedule, cfg.diffusion.num_timesteps, **cfg.diffusion.schedule_options
    )
    options: dict[str, object] = {"steps": steps, "eta": eta} if sampler == "ddim" else {}
    try:
        chosen = make_sampler(sampler, schedule, noise=GaussianNoise(), **options)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"--sampler/--steps/--eta: {err}") from err
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    batches = []
    for start in range(0, num_images, batch_size):
        shape = (min(batch_size, num_images - start), cfg.model.in_channels, 28, 28)
        batches.append(chosen.sample(model, shape, generator=generator, device=device, progress=progress))
    images = images_to_uint8(torch.cat(batches))
    out = Path(out_dir)
    png, npz = out / "samples.png", out / "samples.npz"
    save_samples_npz(images, npz)
    save_grid_png(images, png)
    return SampleResult(resolved, png, npz, num_images)
