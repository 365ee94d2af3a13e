"""Linear and full self-attention over the pixels of an NCHW map, as in the Flax reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hqdm.models.blocks import ChannelLayerNorm, Conv2d

HEADS = 4
DIM_HEAD = 32
FULL_ATTENTION_SCALE = 10.0
L2_NORM_EPS = 1e-12


def _split_qkv(qkv: Tensor, heads: int, dim_head: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 3*heads*dim_head, H, W) -> three (B, heads, dim_head, H*W); channel = part, head, d."""
    b = qkv.shape[0]
    q, k, v = qkv.reshape(b, 3, heads, dim_head, -1).unbind(dim=1)
    return q, k, v


class LinearAttention(nn.Module):
    """Softmax-kernel linear attention; q softmaxed over features, k over positions."""

    def __init__(self, channels: int, heads: int = HEADS, dim_head: int = DIM_HEAD) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        hidden = heads * dim_head
        self.to_qkv = Conv2d(channels, 3 * hidden, kernel_size=1, bias=False)
        self.to_out = Conv2d(hidden, channels, kernel_size=1)
        self.out_norm = ChannelLayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        b, _, height, width = x.shape
        q, k, v = _split_qkv(self.to_qkv(x), self.heads, self.dim_head)
        q = q.softmax(dim=2) * self.dim_head**-0.5
        k = k.softmax(dim=3)
        v = v / (height * width)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        out = out.reshape(b, self.heads * self.dim_head, height, width)
        return self.out_norm(self.to_out(out))


class FullAttention(nn.Module):
    """Softmax attention with q and k L2-normalised over the TOKEN axis (the reference's ``l2norm(axis=1)``).

    This is not cosine similarity over features: each (head, feature) column is normalised across positions.
    """

    def __init__(
        self, channels: int, heads: int = HEADS, dim_head: int = DIM_HEAD, scale: float = FULL_ATTENTION_SCALE
    ) -> None:
        super().__init__()
        self.heads, self.dim_head, self.scale = heads, dim_head, scale
        hidden = heads * dim_head
        self.to_qkv = Conv2d(channels, 3 * hidden, kernel_size=1, bias=False)
        self.to_out = Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, height, width = x.shape
        q, k, v = _split_qkv(self.to_qkv(x), self.heads, self.dim_head)
        q = F.normalize(q, dim=3, eps=L2_NORM_EPS)
        k = F.normalize(k, dim=3, eps=L2_NORM_EPS)
        attn = (torch.einsum("bhdi,bhdj->bhij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhij,bhdj->bhdi", attn, v)
        return self.to_out(out.reshape(b, self.heads * self.dim_head, height, width))


class AttnBlock(nn.Module):
    """Pre-norm residual attention: ``x + attn(LayerNorm(x))``."""

    def __init__(self, channels: int, *, linear: bool) -> None:
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.attn: nn.Module = LinearAttention(channels) if linear else FullAttention(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attn(self.norm(x))
