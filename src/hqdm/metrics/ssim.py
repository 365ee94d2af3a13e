"""SSIM between a generated set and a real set: each generated image against its nearest real image.

Definition (see docs/metrics.md): for every generated image g, find the real image r* with the smallest
pixel-space L2 distance (ties: lowest index), compute SSIM(g, r*) with torchmetrics (Gaussian window 11,
sigma 1.5, data range 1 on images scaled to [0, 1]) and average over all generated images. Deterministic,
no random pairing, and exactly 1 when the generated set is contained in the real set.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torchmetrics.image import StructuralSimilarityIndexMeasure

from hqdm.metrics.errors import ImageInputError
from hqdm.metrics.images import check_uint8_images


class NearestRealSSIM:
    """Streaming mean SSIM of generated batches against their pixel-nearest real images."""

    def __init__(self, real: Tensor, device: torch.device | str | None = None) -> None:
        real = check_uint8_images(real, "real")
        self.device = torch.device(device) if device is not None else real.device
        self.real = real.to(self.device)
        # Distances use raw 0..255 values in float64, where they are exact integers: near-duplicates that
        # differ by one grey level are still ranked correctly and ties resolve to the lowest index.
        self._real_sq = torch.cat([chunk.square().sum(dim=1) for chunk in self._real_chunks()])
        self._metric = StructuralSimilarityIndexMeasure(data_range=1.0).to(self.device)

    def _real_chunks(self, chunk_size: int = 4096) -> Iterator[Tensor]:
        # float64 copies are made one chunk at a time so memory stays bounded for large real sets.
        for chunk in self.real.split(chunk_size):
            yield chunk.flatten(1).double()

    def nearest_real_indices(self, generated: Tensor) -> Tensor:
        """Index of the pixel-nearest real image for each generated image."""
        flat = generated.flatten(1).double()
        cross = torch.cat([flat @ chunk.T for chunk in self._real_chunks()], dim=1)
        distances = flat.square().sum(dim=1, keepdim=True) - 2.0 * cross + self._real_sq
        return distances.argmin(dim=1)

    def update(self, generated: Tensor) -> None:
        generated = check_uint8_images(generated, "generated").to(self.device)
        if generated.shape[1:] != self.real.shape[1:]:
            raise ImageInputError(
                f"SSIM compares images pixel by pixel: generated images are {tuple(generated.shape[1:])} but "
                f"real images are {tuple(self.real.shape[1:])}; resize one set to the other first."
            )
        matched = self.real[self.nearest_real_indices(generated)]
        self._metric.update(generated.float() / 255.0, matched.float() / 255.0)

    def compute(self) -> float:
        return float(self._metric.compute())
