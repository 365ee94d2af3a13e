"""Linear and full self-attention over the pixels of an NCHW map, as in the Flax reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hqdm.models.blocks import LAYER_NORM_EPS, ChannelLayerNorm, Conv2d

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
    """Softmax-kernel linear attention; q softmaxed over features, k over positions.

    Per head, with the 1x1 projections ``W_q, W_k, W_v`` (rows of ``to_qkv``) and ``W_o`` (``to_out``)::

        out = W_o_h (W_v_h X K_h^T / N) softmax_d(W_q_h X) / sqrt(d) + bias,   K_h = softmax_n(W_k_h X)

    Evaluated right to left as written, v and the per-head outputs are (B, 128, H*W) maps, three times the
    work of the (B, C, H*W) input at C = 10. The forward regroups the same products so that only q and k
    are maps: ``M_h = W_o_h W_v_h (X K_h^T)`` is (C x d) per sample and ``out = sum_h M_h q_h``.
    """

    def __init__(self, channels: int, heads: int = HEADS, dim_head: int = DIM_HEAD) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        hidden = heads * dim_head
        self.to_qkv = Conv2d(channels, 3 * hidden, kernel_size=1, bias=False)
        self.to_out = Conv2d(hidden, channels, kernel_size=1)
        self.out_norm = ChannelLayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        n, heads, d = height * width, self.heads, self.dim_head
        hidden = heads * d
        tokens = x.permute(0, 2, 3, 1).reshape(b, n, c)  # a view when x is channels-last
        w_q, w_k, w_v = self.to_qkv.weight.view(3, hidden, c).unbind(0)
        q = F.linear(tokens, w_q).view(b, n, heads, d).softmax(dim=-1).view(b, n, hidden)
        k = F.linear(tokens, w_k).softmax(dim=1)  # over positions
        kx = torch.bmm(k.transpose(1, 2), tokens).view(b, heads, d, c)  # K_h X^T
        w_o = self.to_out.weight.view(c, heads, d)  # [c_out, head, e]
        w_ov = torch.einsum("khe,hec->hkc", w_o, w_v.view(heads, d, c)) * (d**-0.5 / n)  # W_o_h W_v_h
        m = torch.einsum("bhdc,hkc->bhdk", kx, w_ov).reshape(b, hidden, c)
        out = torch.baddbmm(self.to_out.bias.expand(b, 1, c), q, m)
        out = F.layer_norm(out, (c,), self.out_norm.weight, None, LAYER_NORM_EPS)
        return out.view(b, height, width, c).permute(0, 3, 1, 2)  # channels-last NCHW


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
