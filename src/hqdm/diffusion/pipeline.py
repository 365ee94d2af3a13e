"""The sampling pipeline: the one place where hqdm turns an epsilon model into images.

Every command that draws images (training grids, ``hqdm sample``, ``hqdm evaluate``, the study and both
reproductions) goes through :class:`SamplingPipeline`, so one checkpoint and one seed give the same
images wherever they are drawn. Image ``i`` of a request seeded ``seed`` comes from its own noise
generator (:func:`image_seed`): an image does not depend on the batch size, on the batch it was drawn
in, nor on the process that drew it, so a request can be cut into batches or shared out over processes
(``hqdm.train.generate.generate_sharded``) and still give the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from .noise import GaussianNoise, NoiseSource
from .samplers import make_sampler, sampler_options
from .schedules import NoiseSchedule

__all__ = ["PerImageNoise", "SamplingPipeline", "image_seed", "to_uint8"]

BatchDone = Callable[[int], None]  # called with the number of images a finished batch held


def image_seed(seed: int, index: int) -> int:
    """Seed of image ``index`` of a request seeded ``seed``: well mixed, so nearby (seed, index) pairs
    never share a stream (``seed + index`` would make seed 0's image 1 equal seed 1's image 0)."""
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    return int(np.random.SeedSequence([seed % 2**64, index]).generate_state(1, dtype=np.uint64)[0])


def to_uint8(images: Tensor) -> Tensor:
    """Model-range images in [-1, 1], (N, C, H, W) -> uint8 CPU tensor of the same shape."""
    return ((images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


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


class SamplingPipeline:
    """Draw images from ``model`` with a named sampler.

    ``steps`` and ``eta`` reach only the samplers that take them (DDPM always visits every timestep);
    ``noise`` is the noise source the model was trained with (Gaussian by default). A bad sampler name
    or option fails here, before any work.

    >>> pipe = SamplingPipeline(model, schedule, image_shape=(1, 28, 28), sampler="ddim", steps=50)
    >>> images = pipe(64, seed=0)  # uint8 (64, 1, 28, 28)
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: NoiseSchedule,
        *,
        image_shape: tuple[int, int, int],
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        noise: NoiseSource | None = None,
    ) -> None:
        self.model = model
        self.schedule = schedule
        self.image_shape = tuple(image_shape)
        self.sampler = sampler
        self.options = sampler_options(sampler, steps=steps, eta=eta)
        self.noise = noise if noise is not None else GaussianNoise()
        make_sampler(sampler, schedule, **self.options)  # bad names and options fail before any work

    @property
    def device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def batches(
        self,
        indices: range,
        *,
        seed: int,
        batch_size: int = 256,
        on_batch: BatchDone | None = None,
    ) -> Iterator[Tensor]:
        """Yield uint8 batches of the images ``indices`` (in order), one batch in memory at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(indices.start, indices.stop, batch_size):
            batch = range(start, min(start + batch_size, indices.stop))
            streams = PerImageNoise(
                [torch.Generator().manual_seed(image_seed(seed, i)) for i in batch], self.noise
            )
            sampler = make_sampler(self.sampler, self.schedule, noise=streams, **self.options)
            images = sampler.sample(self.model, (len(batch), *self.image_shape), device=self.device)
            if on_batch is not None:
                on_batch(len(batch))
            yield to_uint8(images)

    def __call__(
        self, num_images: int, *, seed: int = 0, batch_size: int = 256, on_batch: BatchDone | None = None
    ) -> Tensor:
        """Images ``0 .. num_images-1`` of ``seed``: a uint8 CPU tensor (N, C, H, W)."""
        if num_images < 1:
            raise ValueError(f"the number of images must be positive, got {num_images}")
        parts = self.batches(range(num_images), seed=seed, batch_size=batch_size, on_batch=on_batch)
        return torch.cat(list(parts))
