"""The models' forwards as first written, before the fast path: NCHW, float32, one op per formula step.

They are the oracle of the fast forwards (tests/test_fast_forward.py) and the baseline that
``hqdm bench train-step`` measures them against: :func:`plain_forwards` swaps them into the model classes
for the duration of a ``with`` block. Nothing else uses them. (The lightweight U-Net's forward only
gained autocast, which is off at fp32, so it has no plain twin.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from hqdm.models.attention import LinearAttention
from hqdm.models.blocks import ResnetBlock
from hqdm.models.hybrid import QFullResnetBlock, QResnetBlock, QuanResnetBlock
from hqdm.models.unet import UNet


def _film(block: torch.nn.Module, h: Tensor, temb: Tensor) -> Tensor:
    scale, shift = block.time_mlp.dense(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
    return h * (1 + scale) + shift


def linear_attention(self: LinearAttention, x: Tensor) -> Tensor:
    b, _, height, width = x.shape
    q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, self.dim_head, -1).unbind(dim=1)
    q = q.softmax(dim=2) * self.dim_head**-0.5
    k = k.softmax(dim=3)
    v = v / (height * width)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    out = torch.einsum("bhde,bhdn->bhen", context, q)
    out = out.reshape(b, self.heads * self.dim_head, height, width)
    return self.out_norm(self.to_out(out))


def resnet_block(self: ResnetBlock, x: Tensor, temb: Tensor) -> Tensor:
    h = F.silu(_film(self, self.norm_0(self.conv_0(x)), temb))
    h = F.silu(self.norm_1(self.conv_1(h)))
    return self.res_conv(x) + h


def q_resnet_block(self: QResnetBlock, x: Tensor, temb: Tensor) -> Tensor:
    q = self.quantum_channels
    q1 = self.circuits_1(x[:, :q])
    h = torch.cat([q1, self.conv_0(x[:, q:])], dim=1)
    h = F.silu(_film(self, self.norm_0(h), temb))
    q2 = q1 if self.semantics.vertex_stage2_reuses_stage1 else self.circuits_2(h[:, :q])
    h = torch.cat([q2, self.conv_1(h[:, q:])], dim=1)
    return x + F.silu(self.norm_1(h))


def q_full_resnet_block(self: QFullResnetBlock, x: Tensor, temb: Tensor) -> Tensor:
    h = F.silu(_film(self, self.norm_0(self._stage(self.circuits_1, self.basic_1, x)), temb))
    basic = self.basic_1 if self.semantics.full_vertex_shares_basic_circuit else self.basic_2
    return x + F.silu(self.norm_1(self._stage(self.circuits_2, basic, h)))


def quan_resnet_block(self: QuanResnetBlock, x: Tensor, temb: Tensor) -> Tensor:
    q = 3
    h = torch.cat([self.quanv_0(x[:, :q]), self.conv_0(x[:, q:])], dim=1)
    h = F.silu(_film(self, self.norm_0(h), temb))
    quanv_input = x if self.semantics.quanv_stage2_reads_block_input else h
    h = torch.cat([self.quanv_1(quanv_input[:, :q]), self.conv_1(h[:, q:])], dim=1)
    return x + F.silu(self.norm_1(h))


def unet(self: UNet, x: Tensor, t: Tensor) -> Tensor:
    temb = self.time_mlp(t.to(x.dtype))
    h = self.init_conv(x)
    skips = [h]
    for level in self.downs:
        h = level(h, temb, skips)
    h = self.mid(h, temb)
    for level in reversed(self.ups):
        h = level(h, temb, skips)
    h = self.final_res(torch.cat([h, skips.pop()], dim=1), temb)
    return self.final_conv(h)


PLAIN_FORWARDS = {
    LinearAttention: linear_attention,
    ResnetBlock: resnet_block,
    QResnetBlock: q_resnet_block,
    QFullResnetBlock: q_full_resnet_block,
    QuanResnetBlock: quan_resnet_block,
    UNet: unet,
}


@contextlib.contextmanager
def plain_forwards() -> Iterator[None]:
    """Every model class with a fast forward runs its plain forward inside the block."""
    fast = {cls: cls.forward for cls in PLAIN_FORWARDS}
    try:
        for cls, forward in PLAIN_FORWARDS.items():
            cls.forward = forward
        yield
    finally:
        for cls, forward in fast.items():
            cls.forward = forward
