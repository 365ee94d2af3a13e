"""nn.Module wrappers around the offline Inception networks: FID pool features and (optional) IS logits.

Both take uint8 images (N, 1 or 3, H, W) and share one preprocessing: grey replicated to RGB, float resize
to 299x299 (no re-quantisation), then ``(x - 128) / 128``, the input range of the TF FID graph.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from hqdm.metrics.images import check_uint8_images
from hqdm.metrics.resize import RESIZE_MODES, TORCH_BILINEAR, resize_images
from hqdm.metrics.weights import FID_WEIGHTS_SHA1, resolve_fid_weights
from hqdm.precision import autocast

INCEPTION_SIZE = (299, 299)
FID_NUM_FEATURES = 2048
FEATURE_PRECISIONS = ("fp32", "bf16")


class InceptionPreprocess(nn.Module):
    """uint8 (N, 1|3, H, W) -> float32 (N, 3, 299, 299) in [-1, 1), the TF FID graph's input convention."""

    def __init__(self, resize: str = TORCH_BILINEAR) -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f"Unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}.")
        self.resize = resize

    def forward(self, images: Tensor) -> Tensor:
        x = check_uint8_images(images).to(torch.float32)
        x = x.expand(-1, 3, -1, -1)  # grey -> RGB; a no-op for 3 channels
        x = resize_images(x, INCEPTION_SIZE, self.resize)
        return (x - 128.0) / 128.0


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    # Loaded on CPU so that machines without the saving device can read it; .to() moves it later.
    with warnings.catch_warnings():
        # TorchScript is the format the FID network ships in; torch 2.x flags jit.load as deprecated.
        warnings.filterwarnings("ignore", r".*torch\.jit\.load.* is deprecated", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _module_device(module: nn.Module) -> torch.device:
    return next(iter(module.parameters()), torch.empty(0)).device


class FIDInceptionFeatures(nn.Module):
    """The FID Inception network (2048-d pool_3 features) as a torchmetrics ``feature=`` module.

    ``num_features`` lets torchmetrics skip its dummy forward pass; ``cache_key`` names the network,
    preprocessing and precision so cached real-image features are never mixed between configurations.
    The network runs channels-last (the same features to float32 rounding, faster on CPU);
    ``precision="bf16"`` runs its convolutions under bfloat16 autocast (docs/metrics.md: the FID it gives
    against float32). Features are returned in float32 either way.
    """

    num_features: int = FID_NUM_FEATURES

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        resize: str = TORCH_BILINEAR,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if precision not in FEATURE_PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; use one of {', '.join(FEATURE_PRECISIONS)}.")
        self.preprocess = InceptionPreprocess(resize)
        self.weights_path = resolve_fid_weights(weights)
        self.net = _load_torchscript(self.weights_path)
        self.precision = precision
        suffix = "" if precision == "fp32" else f"-{precision}"  # fp32 keeps the key of earlier caches
        self.cache_key = f"fid-inception-sha1-{FID_WEIGHTS_SHA1}-resize-{resize}{suffix}"
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionFeatures:
        # Always inference: a parent's .train() (e.g. a metric inside a training module) must not
        # switch the wrapped network to training behaviour.
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        device = _module_device(self.net)
        x = self.preprocess(images.to(device)).contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, device):
            features = self.net(x)
        return features.reshape(-1, self.num_features).float()


class InceptionClassifier(nn.Module):
    """A user-supplied TorchScript classifier giving class logits for the Inception Score.

    Contract: the file loads with ``torch.jit.load``; called on float32 (N, 3, 299, 299) produced by
    InceptionPreprocess (same resize, range ``(uint8 - 128) / 128``) it returns (N, K) logits, K >= 2
    (pre-softmax; e.g. the 1008-way TF Inception ``logits`` or the 1000-way ImageNet head).
    """

    def __init__(self, weights: str | os.PathLike[str], resize: str = TORCH_BILINEAR) -> None:
        super().__init__()
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Inception classifier weights for IS not found: {path}.")
        self.preprocess = InceptionPreprocess(resize)
        self.net = _load_torchscript(path)
        self.eval()

    def train(self, mode: bool = True) -> InceptionClassifier:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        logits = self.net(self.preprocess(images.to(_module_device(self.net))))
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != images.shape[0]:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(
                f"The IS classifier must return (N, K) logits for N={images.shape[0]} images, got {shape}."
            )
        if logits.shape[1] < 2:
            raise ValueError(f"The IS classifier must return at least 2 classes, got {logits.shape[1]}.")
        return logits.float()
