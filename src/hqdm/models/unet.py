"""The paper's denoising U-Net (dim 10, mults 1,2,3,4) with swappable vertex and encoder ResNet blocks.

Module names mirror the reference: ``init_conv``, ``time_mlp``, ``downs.<level>``, ``mid`` (the vertex),
``ups.<level>`` (indexed by level, executed from 3 down to 0), ``final_res``, ``final_conv``.
Every vertex parameter lives under ``mid.``; transfer learning copies everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from hqdm.models.attention import AttnBlock
from hqdm.models.blocks import Conv2d, ResnetBlock, TimeEmbedding, Upsample
from hqdm.precision import MixedPrecisionModel, autocast

DIM = 10
DIM_MULTS = (1, 2, 3, 4)
TIME_DIM = 4 * DIM
# Spatial size per level. The geometry is hard-wired like the reference: 4x4/s2 convs halve
# 28->14->7, a 7x7/s2/p1 conv maps 7->2, and the decoder resizes 2->7->14->28.
LEVEL_SIZES: Mapping[int, tuple[int, ...]] = {28: (28, 14, 7, 2)}
SUPPORTED_IMAGE_SIZES = tuple(LEVEL_SIZES)
_DOWN_KERNELS = (4, 4, 7)

# (channels, time_dim) -> a block mapping (x[B,channels,H,W], temb[B,time_dim]) to the same shape.
BlockFactory = Callable[[int, int], nn.Module]


def classical_block(channels: int, time_dim: int) -> nn.Module:
    """The classical same-width ResNet block (the default everywhere)."""
    return ResnetBlock(channels, channels, time_dim)


def check_image_size(image_size: int) -> None:
    if image_size not in LEVEL_SIZES:
        raise ValueError(
            f"image_size={image_size} is not supported: the reference U-Net geometry (28->14->7->2) only "
            f"works for images of size {SUPPORTED_IMAGE_SIZES} (square); resize your data to 28x28"
        )


class EncoderLevel(nn.Module):
    """Two ResNet blocks (each output pushed as a skip, the second after attention), then a resize."""

    def __init__(self, channels: int, time_dim: int, down: nn.Module, block: BlockFactory) -> None:
        super().__init__()
        self.res0 = block(channels, time_dim)
        self.res1 = block(channels, time_dim)
        self.attn = AttnBlock(channels, linear=True)
        self.down = down

    def forward(self, h: Tensor, temb: Tensor, skips: list[Tensor]) -> Tensor:
        h = self.res0(h, temb)
        skips.append(h)
        h = self.attn(self.res1(h, temb))
        skips.append(h)
        return self.down(h)


class Vertex(nn.Module):
    """Bottleneck at 2x2: ResNet block, full attention, ResNet block."""

    def __init__(self, channels: int, time_dim: int, block: BlockFactory) -> None:
        super().__init__()
        self.res0 = block(channels, time_dim)
        self.attn = AttnBlock(channels, linear=False)
        self.res1 = block(channels, time_dim)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return self.res1(self.attn(self.res0(h, temb)), temb)


class DecoderLevel(nn.Module):
    """Two ResNet blocks on ``[h, skip]`` (skips popped LIFO), attention, then a resize."""

    def __init__(self, channels: int, skip_channels: int, time_dim: int, up: nn.Module) -> None:
        super().__init__()
        self.res0 = ResnetBlock(channels + skip_channels, channels, time_dim)
        self.res1 = ResnetBlock(channels + skip_channels, channels, time_dim)
        self.attn = AttnBlock(channels, linear=True)
        self.up = up

    def forward(self, h: Tensor, temb: Tensor, skips: list[Tensor]) -> Tensor:
        h = self.res0(torch.cat([h, skips.pop()], dim=1), temb)
        h = self.res1(torch.cat([h, skips.pop()], dim=1), temb)
        return self.up(self.attn(h))


class UNet(MixedPrecisionModel):
    """Epsilon-prediction U-Net: ``model(x[B,C,28,28], t[B]) -> [B,C,28,28]``.

    ``vertex_block`` builds both ``mid`` ResNet blocks; ``encoder_blocks[level]`` builds both ResNet blocks
    of that encoder level. The decoder is always classical, as in the paper.

    The forward runs channels-last (a 3x3 convolution's backward at 10 channels is several times faster
    than in NCHW on CPU), at ``self.precision`` (:mod:`hqdm.precision`); the output has the
    input's dtype and layout.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        *,
        vertex_block: BlockFactory = classical_block,
        encoder_blocks: Mapping[int, BlockFactory] | None = None,
    ) -> None:
        super().__init__()
        check_image_size(image_size)
        if in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels}")
        encoder_blocks = dict(encoder_blocks or {})
        levels = len(DIM_MULTS)
        if not set(encoder_blocks) <= set(range(levels)):
            raise ValueError(
                f"encoder_blocks keys must be encoder levels 0..{levels - 1}, got {encoder_blocks}"
            )
        self.in_channels, self.image_size = in_channels, image_size
        sizes = LEVEL_SIZES[image_size]
        dims = (DIM, *(DIM * m for m in DIM_MULTS))  # (10, 10, 20, 30, 40)

        self.init_conv = Conv2d(in_channels, DIM, kernel_size=7, padding=3)
        self.time_mlp = TimeEmbedding(DIM, TIME_DIM)
        self.downs = nn.ModuleList(
            EncoderLevel(dims[i], TIME_DIM, self._down(i, dims), encoder_blocks.get(i, classical_block))
            for i in range(levels)
        )
        self.mid = Vertex(dims[-1], TIME_DIM, vertex_block)
        self.ups = nn.ModuleList(
            DecoderLevel(dims[i + 1], dims[i], TIME_DIM, self._up(i, dims, sizes)) for i in range(levels)
        )
        self.final_res = ResnetBlock(2 * DIM, DIM, TIME_DIM)
        self.final_conv = Conv2d(DIM, in_channels, kernel_size=1)

    @staticmethod
    def _down(level: int, dims: tuple[int, ...]) -> nn.Module:
        if level < len(_DOWN_KERNELS):
            return Conv2d(dims[level], dims[level + 1], kernel_size=_DOWN_KERNELS[level], stride=2, padding=1)
        return Conv2d(dims[level], dims[level + 1], kernel_size=3, padding=1)

    @staticmethod
    def _up(level: int, dims: tuple[int, ...], sizes: tuple[int, ...]) -> nn.Module:
        if level > 0:
            return Upsample(dims[level + 1], dims[level], sizes[level - 1])
        return Conv2d(dims[1], dims[0], kernel_size=3, padding=1)

    def _check_inputs(self, x: Tensor, t: Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected x of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(
                f"expected t of shape ({x.shape[0]},) (one timestep per sample), got {tuple(t.shape)}"
            )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self._check_inputs(x, t)
        with autocast(self.precision, x.device):
            temb = self.time_mlp(t.to(x.dtype))
            # a 1-channel input is channels-last already, so the layout is set on the first map
            h = self.init_conv(x).contiguous(memory_format=torch.channels_last)
            skips = [h]
            for level in self.downs:
                h = level(h, temb, skips)
            h = self.mid(h, temb)
            for level in reversed(self.ups):
                h = level(h, temb, skips)
            h = self.final_res(torch.cat([h, skips.pop()], dim=1), temb)
            out = self.final_conv(h)
        return out.to(x.dtype).contiguous(memory_format=torch.contiguous_format)
