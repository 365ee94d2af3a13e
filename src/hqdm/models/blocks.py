"""Classical building blocks of the denoising U-Net (NCHW), initialised like the Flax reference."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GROUPS = 10
GROUP_NORM_EPS = 1e-6  # Flax default (PyTorch's default is 1e-5)
LAYER_NORM_EPS = 1e-5
WEIGHT_STANDARDIZATION_EPS = 1e-5
# Standard deviation of a unit normal truncated to [-2, 2]; Flax divides by it so the
# truncated samples keep the intended variance.
_TRUNCATED_UNIT_STD = 0.87962566103423978


def lecun_normal_(weight: Tensor, fan_in: int) -> Tensor:
    """Flax's ``lecun_normal``: truncated normal (at +-2 std) with variance ``1 / fan_in``."""
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_UNIT_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` initialised like ``flax.linen.Conv`` (lecun-normal kernel, zero bias)."""

    def reset_parameters(self) -> None:
        lecun_normal_(self.weight, self.weight[0].numel())
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class Linear(nn.Linear):
    """``nn.Linear`` initialised like ``flax.linen.Dense`` (lecun-normal kernel, zero bias)."""

    def reset_parameters(self) -> None:
        lecun_normal_(self.weight, self.in_features)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class WSConv2d(Conv2d):
    """3x3 convolution (padding 1) whose kernel is standardised per output channel on every call."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)

    def standardized_weight(self) -> Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, correction=0)  # population variance, as jnp.var
        return (w - mean) / torch.sqrt(var + WEIGHT_STANDARDIZATION_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, padding=self.padding)


class ChannelLayerNorm(nn.Module):
    """Per-pixel LayerNorm over channels with a scale and no bias (Flax ``LayerNorm(use_bias=False)``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, None, LAYER_NORM_EPS)
        return y.movedim(-1, 1)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the reference's 10 groups and Flax's epsilon."""
    return nn.GroupNorm(GROUPS, channels, eps=GROUP_NORM_EPS)


def norm_film_silu(
    x: Tensor, norm: nn.GroupNorm, scale: Tensor | None = None, shift: Tensor | None = None
) -> Tensor:
    """``silu(GN(x) * (1 + scale) + shift)`` (FiLM omitted when ``scale`` is None), in float32.

    GroupNorm's and FiLM's affine maps fold into one per-(sample, channel) ``x * a + b``, so the map is
    read once for the statistics and once for the output, in NCHW or channels-last, where the unfused
    chain (``F.group_norm``, two FiLM ops) made several passes and channels-last GroupNorm is slow on CPU.
    """
    b, c = x.shape[:2]
    g = norm.num_groups
    xf = x.float()  # statistics and output in float32, also under bf16 autocast
    if xf.is_contiguous(memory_format=torch.channels_last) and not xf.is_contiguous():
        grouped = xf.permute(0, 2, 3, 1).reshape(b, -1, g, c // g)  # a view: (B, H*W, G, C/G)
        var, mean = torch.var_mean(grouped, dim=(1, 3), correction=0)
    else:
        var, mean = torch.var_mean(xf.reshape(b, g, -1), dim=2, correction=0)
    rstd = torch.rsqrt(var + norm.eps).repeat_interleave(c // g, dim=1)  # (B, C)
    a = rstd * norm.weight
    shift_c = norm.bias - mean.repeat_interleave(c // g, dim=1) * a
    if scale is not None:
        a, shift_c = a * (1 + scale), shift_c * (1 + scale) + shift
    return F.silu(torch.addcmul(shift_c[:, :, None, None], xf, a[:, :, None, None]))


class SinusoidalEmbedding(nn.Module):
    """``[sin(t f_k) | cos(t f_k)]`` with ``f_k = exp(-k ln(10000) / (half - 1))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"sinusoidal embedding width must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        k = torch.arange(half, device=t.device, dtype=t.dtype)
        freqs = torch.exp(k * -(math.log(10000.0) / (half - 1)))
        angles = t[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding -> Dense -> GELU (tanh approximation, Flax default) -> Dense."""

    def __init__(self, dim: int, time_dim: int) -> None:
        super().__init__()
        self.sinusoidal = SinusoidalEmbedding(dim)
        self.dense_0 = Linear(dim, time_dim)
        self.act = nn.GELU(approximate="tanh")
        self.dense_1 = Linear(time_dim, time_dim)

    def forward(self, t: Tensor) -> Tensor:
        return self.dense_1(self.act(self.dense_0(self.sinusoidal(t))))


class FiLM(nn.Module):
    """Time conditioning ``h * (1 + scale) + shift`` with ``[scale | shift] = Dense(SiLU(temb))``;
    applied by :func:`norm_film_silu`, fused with the GroupNorm before it."""

    def __init__(self, time_dim: int, channels: int) -> None:
        super().__init__()
        self.dense = Linear(time_dim, 2 * channels)

    def scale_shift(self, temb: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, shift), each (B, channels), in float32."""
        scale, shift = self.dense(F.silu(temb)).float().chunk(2, dim=1)
        return scale, shift


class ResnetBlock(nn.Module):
    """WSConv -> GN -> FiLM -> SiLU -> WSConv -> GN -> SiLU, plus a (1x1-projected) residual."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int) -> None:
        super().__init__()
        self.conv_0 = WSConv2d(in_channels, out_channels)
        self.norm_0 = group_norm(out_channels)
        self.time_mlp = FiLM(time_dim, out_channels)
        self.conv_1 = WSConv2d(out_channels, out_channels)
        self.norm_1 = group_norm(out_channels)
        self.res_conv: nn.Module = (
            Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = norm_film_silu(self.conv_0(x), self.norm_0, *self.time_mlp.scale_shift(temb))
        h = norm_film_silu(self.conv_1(h), self.norm_1)
        return self.res_conv(x) + h


def resize_nearest(x: Tensor, size: int) -> Tensor:
    """Nearest resize with JAX's index map; ``nearest-exact`` gives 2->7 as [0,0,0,1,1,1,1]."""
    return F.interpolate(x, size=(size, size), mode="nearest-exact")


class Upsample(nn.Module):
    """Nearest resize to ``size`` then a 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.conv = Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(resize_nearest(x, self.size))
