"""The sampling pipeline (hqdm.diffusion.pipeline): per-image noise streams, and one path for every command.

A tiny convolutional stand-in on 28x28 images keeps the file to a few seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from conftest import PixelStats, TinyEps, seeded_images
from hqdm.config import ModelConfig, config_from_dict
from hqdm.diffusion import SamplingPipeline, image_seed, make_noise_source, make_schedule
from hqdm.experiments.evaluate_checkpoint import EvalSettings, evaluate_checkpoint
from hqdm.registry import UnknownNameError
from hqdm.train import sample_to_folder, train

T = 50


def tiny_factory(model: ModelConfig) -> nn.Module:
    return TinyEps(1000)


def test_images_do_not_depend_on_the_batch_they_are_drawn_in() -> None:
    torch.manual_seed(0)
    model, schedule = TinyEps(1000), make_schedule("cosine", T)

    def draw(batch_size: int, seed: int = 3, noise=None, n: int = 5) -> Tensor:
        pipe = SamplingPipeline(model, schedule, image_shape=(1, 8, 8), sampler="ddpm", noise=noise)
        return pipe(n, seed=seed, batch_size=batch_size)

    whole = draw(5)
    assert whole.dtype == torch.uint8 and whole.shape == (5, 1, 8, 8)
    assert torch.equal(draw(2), whole)
    assert torch.equal(draw(5, seed=4)[0], draw(5, seed=4)[0]) and not torch.equal(draw(5, seed=4), whole)
    # another noise source draws each image's rows from the same per-image streams
    quantum = make_noise_source("quantum", shots=16)
    shot_noise = draw(2, noise=quantum, n=3)
    assert torch.equal(shot_noise, draw(3, noise=quantum, n=3)) and not torch.equal(shot_noise, whole[:3])
    # each image has its own stream: no two images of a request, nor neighbouring seeds, share one
    seeds = {image_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150


def test_settings_reach_only_the_samplers_that_take_them_and_bad_ones_fail_at_once() -> None:
    model, schedule = TinyEps(1000), make_schedule("cosine", T)
    ddpm = SamplingPipeline(model, schedule, image_shape=(1, 8, 8), sampler="ddpm", steps=3, eta=0.5)
    ddim = SamplingPipeline(model, schedule, image_shape=(1, 8, 8), sampler="ddim", steps=3, eta=0.5)
    assert ddpm.options == {} and ddim.options == {"steps": 3, "eta": 0.5}
    with pytest.raises(UnknownNameError, match="unknown sampler 'euler'; choose one of ddpm, ddim"):
        SamplingPipeline(model, schedule, image_shape=(1, 8, 8), sampler="euler")
    with pytest.raises(ValueError, match="DDIM steps"):
        SamplingPipeline(model, schedule, image_shape=(1, 8, 8), sampler="ddim", steps=T + 1)


class RecordingFeatures(PixelStats):
    """Stand-in FID network that keeps every image it is shown."""

    cache_key = "test-pipeline-recording-v1"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, images: Tensor) -> Tensor:
        self.seen.append(images.detach().to(torch.uint8).cpu())
        return super().forward(images)


def test_sample_and_evaluate_draw_the_same_images_from_one_checkpoint_and_seed(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "model": {"name": "unet"},
            "diffusion": {"num_timesteps": T},
            "training": {"batch_size": 4, "epochs": 1, "seed": 1, "grid_epochs": [], "precision": "fp32"},
            "output_dir": str(tmp_path / "run"),
        }
    )
    data = seeded_images(8, size=28)
    run = train(cfg, images=data, model_factory=tiny_factory, progress=False)

    sampled = sample_to_folder(
        run.run_dir, tmp_path / "s", num_images=6, steps=3, seed=2, batch_size=4, model_factory=tiny_factory
    )
    with np.load(sampled.npz) as npz:
        from_sample = torch.from_numpy(npz["images"])

    real = torch.randint(
        0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(9)
    )
    features = RecordingFeatures()
    evaluate_checkpoint(
        run.run_dir,
        tmp_path / "eval",
        EvalSettings(num_samples=6, sampler="ddim", steps=3, seed=2, batch_size=5, metrics=("fid",)),
        model_factory=tiny_factory,
        feature_extractor=features,
        real_images=real,
    )
    shown = torch.cat(features.seen)
    generated = shown[[not any(torch.equal(row, r) for r in real) for row in shown]]
    assert generated.shape == (6, 1, 28, 28) and len({g.numpy().tobytes() for g in generated}) == 6
    assert torch.equal(generated, from_sample)
