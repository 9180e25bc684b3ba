"""HOISDF's point-wise attention (§3.2.2–3.2.5): point tokens, encoder, MANO query decoder.

The field-guided pose regression of HOISDF turns sampled query points into
tokens and lets them attend to each other:

* :class:`~hoimask.nn.PointTokenEmbedding` (:mod:`hoimask.nn.point_tokens`)
  makes the tokens: ``[p - c, γ(s·(p - c)), MLP(f) · σ(d)]`` per point.
* :class:`PointTransformerEncoder` — self-attention over all tokens of a
  branch (hand tokens + cross-hand tokens in the hand branch), returning every
  layer's output so that point-wise heads can be supervised at every depth.
* :class:`PointPoseTransformer` — the hand branch: the encoder followed by a
  DETR-style decoder of 17 learned MANO queries (global rotation, 15 joint
  rotations, shape) with HOISDF's masks: each finger's three queries attend
  only within their finger, and no query reads the cross (object) tokens.

Attention masks in this module are bool with **True = may attend** (the
convention of :mod:`hoimask.nn.transformer`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ShapeError, ValueRangeError, check_in_range, check_int, check_shape
from hoimask.nn._mlp import relu_mlp
from hoimask.nn.transformer import fp32_on_cpu_bf16

__all__ = [
    "PointTransformerEncoder",
    "PointEncoderOutput",
    "PointPoseTransformer",
    "PointPoseOutput",
    "mano_query_mask",
    "point_memory_mask",
]


def mano_query_mask(
    num_fingers: int = 5,
    joints_per_finger: int = 3,
    *,
    finger_mask: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Self-attention mask of the MANO queries (HOISDF's ``tgt_mask``), True = may attend.

    Query 0 is the global rotation, queries ``1 … F·J`` the joint rotations in
    MANO's order (index, middle, little, ring, thumb; three each, so each
    finger is ``J`` consecutive queries), and the last query the shape. With
    ``finger_mask`` each finger's queries attend only to the queries of the
    same finger, and the global-rotation and shape queries attend only to
    themselves (as in the official code); without it every query attends to
    every query.

    Returns:
        ``(Q, Q)`` bool with ``Q = F·J + 2``.

    Example:
        >>> m = mano_query_mask()
        >>> m.shape, m[1].nonzero().flatten().tolist(), m[0].nonzero().flatten().tolist()
        (torch.Size([17, 17]), [1, 2, 3], [0])
    """
    check_int(num_fingers, name="num_fingers", low=0)
    check_int(joints_per_finger, name="joints_per_finger", low=1)
    q = num_fingers * joints_per_finger + 2
    if not finger_mask:
        return torch.ones(q, q, dtype=torch.bool, device=device)
    group = torch.arange(q, device=device)
    group = torch.where(
        (group >= 1) & (group <= num_fingers * joints_per_finger),
        (group - 1) // joints_per_finger,  # finger index 0 … F-1
        -1 - group,  # global and shape: a group of their own
    )
    return group[:, None] == group[None, :]


def point_memory_mask(
    num_queries: int,
    num_hand: int,
    num_object: int,
    *,
    block_object: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Cross-attention mask of the queries over ``[hand tokens, object tokens]``, True = may attend.

    HOISDF's ``memory_mask``: the MANO queries read only the hand tokens; the
    object (cross-hand) tokens inform them only through the encoder.

    Returns:
        ``(num_queries, num_hand + num_object)`` bool.

    Example:
        >>> point_memory_mask(2, 3, 2).int()
        tensor([[1, 1, 1, 0, 0],
                [1, 1, 1, 0, 0]], dtype=torch.int32)
    """
    check_int(num_queries, name="num_queries", low=1)
    check_int(num_hand, name="num_hand", low=1)
    check_int(num_object, name="num_object", low=0)
    mask = torch.ones(num_queries, num_hand + num_object, dtype=torch.bool, device=device)
    if block_object:
        mask[:, num_hand:] = False
    return mask


class PointEncoderOutput(NamedTuple):
    """What :class:`PointTransformerEncoder` returns."""

    memory: torch.Tensor  #: (B, N, D) output of the last layer (what a decoder reads)
    intermediate: torch.Tensor  #: (depth, B, N, D) every layer's output after a shared LayerNorm


class PointTransformerEncoder(nn.Module):
    """Self-attention over point tokens, every layer's output returned (HOISDF ``TransformerEncoder``).

    ``depth`` layers of :class:`torch.nn.TransformerEncoderLayer` (post-norm,
    ReLU feed-forward, dropout, as DETR and HOISDF with ``pre_norm=False``).
    The tokens carry their position themselves, so no positional embedding is
    added (HOISDF passes zeros). ``intermediate`` holds each layer's output
    through one shared LayerNorm (HOISDF's ``inter_norm``): point-wise heads
    read it and are supervised at every depth. HOISDF's hand branch uses 6
    layers, its object branch (``VoteTransformer``) 3.

    Args:
        dim: token width (256).
        depth: number of layers.
        num_heads: attention heads (4).
        mlp_dim: feed-forward width (1024).
        dropout: dropout in attention and feed-forward (0.1).
        norm_first: pre-norm layers (and a final LayerNorm on ``memory``).

    Shape:
        tokens ``(B, N, dim)`` -> :class:`PointEncoderOutput` ``((B, N, dim), (depth, B, N, dim))``.

    Example:
        >>> enc = PointTransformerEncoder(32, 2, num_heads=2, mlp_dim=64).eval()
        >>> out = enc(torch.randn(3, 10, 32))
        >>> out.memory.shape, out.intermediate.shape
        (torch.Size([3, 10, 32]), torch.Size([2, 3, 10, 32]))
    """

    def __init__(
        self,
        dim: int = 256,
        depth: int = 6,
        *,
        num_heads: int = 4,
        mlp_dim: int = 1024,
        dropout: float = 0.1,
        norm_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "PointTransformerEncoder.__init__"
        self.dim = check_int(dim, name="dim", low=1, fn=fn)
        check_int(depth, name="depth", low=1, fn=fn)
        _check_heads(dim, num_heads, fn)
        check_int(mlp_dim, name="mlp_dim", low=1, fn=fn)
        check_in_range(dropout, name="dropout", low=0.0, high=1.0, high_inclusive=False, fn=fn)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, num_heads, mlp_dim, dropout, activation="relu", batch_first=True,
                norm_first=norm_first, device=device, dtype=dtype,
            )
            for _ in range(depth)
        )
        self.inter_norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.norm: nn.Module = nn.LayerNorm(dim, device=device, dtype=dtype) if norm_first else nn.Identity()
        _xavier_(self.layers)

    def forward(self, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None) -> PointEncoderOutput:
        """Encode the tokens; ``attn_mask`` ``(N, N)`` bool, True = may attend (optional)."""
        dims = check_shape(tokens, f"B N {self.dim}", name="tokens")
        blocked = None
        if attn_mask is not None:
            check_shape(attn_mask, "N N", name="attn_mask", dims=dims)
            blocked = ~attn_mask.bool()  # torch's convention: True = may not attend
        precision, (x,) = fp32_on_cpu_bf16(tokens)  # torch's layers: CPU flash attention is slow in bf16
        intermediate = []
        with precision:
            for layer in self.layers:
                x = layer(x, src_mask=blocked)  # (B, N, D)
                intermediate.append(self.inter_norm(x))
            return PointEncoderOutput(self.norm(x), torch.stack(intermediate))


class PointPoseOutput(NamedTuple):
    """What :class:`PointPoseTransformer` returns; leading ``L`` = one entry per decoder/encoder layer."""

    rotation_6d: torch.Tensor  #: (L_dec, B, 16, 6) raw 6D rotations, global first (MANO order)
    shape: torch.Tensor  #: (L_dec, B, num_betas) β
    queries: torch.Tensor  #: (L_dec, B, 17, D) decoder outputs after the shared LayerNorm
    point_features: torch.Tensor  #: (L_enc, B, N_hand, D) encoder outputs of the hand tokens (for voting)
    memory: torch.Tensor  #: (B, N_hand + N_object, D) last encoder layer's output


class PointPoseTransformer(nn.Module):
    """HOISDF's hand branch: point encoder + masked MANO-query decoder + rotation/shape heads.

    The encoder (:class:`PointTransformerEncoder`, 6 layers) runs over the
    hand tokens followed by the cross-hand (object) tokens, so object cues
    reach the hand tokens (paper eq. 7). A decoder of ``decoder_depth`` (4)
    DETR-style layers then refines 17 queries — index 0 the global rotation,
    1–15 the joint rotations in MANO order, 16 the shape: the targets start
    at zero and the learned query embeddings are added to the queries and
    keys of self-attention and to the queries of cross-attention at every
    layer (post-norm, as in HOISDF/DETR). Masks (:func:`mano_query_mask`,
    :func:`point_memory_mask`): each finger's three queries attend only
    within their finger, the global and shape queries only to themselves,
    and no query reads the object tokens. Every decoder layer's output
    (through one shared LayerNorm) goes through the heads — ReLU MLPs of 3
    layers, to 6D per rotation query and to β from the shape query — so all
    layers can be supervised (DETR-style intermediate supervision); use
    index ``-1`` at test time.

    Because the first decoder layer's self-attention reads all-zero targets,
    the masks matter from the second layer on; in every layer a query's
    output depends only on its own group's query embeddings and the hand part
    of the memory.

    Args:
        dim: token width (256).
        num_heads: attention heads (4).
        mlp_dim: feed-forward width (1024).
        encoder_depth: encoder layers (6).
        decoder_depth: decoder layers (4).
        dropout: dropout (0.1).
        num_betas: shape coefficients (10).
        finger_mask: use the finger-wise query mask (HOISDF) or let all
            queries attend to each other.
        block_object_memory: hide the object tokens from the queries (HOISDF).

    Shape:
        hand_tokens ``(B, N_h, dim)`` (N_h >= 1), object_tokens ``(B, N_o, dim)``
        or None -> :class:`PointPoseOutput`.

    Example:
        >>> model = PointPoseTransformer(32, num_heads=2, mlp_dim=64, encoder_depth=2, decoder_depth=3).eval()
        >>> out = model(torch.randn(2, 12, 32), torch.randn(2, 4, 32))
        >>> out.rotation_6d.shape, out.shape.shape, out.point_features.shape
        (torch.Size([3, 2, 16, 6]), torch.Size([3, 2, 10]), torch.Size([2, 2, 12, 32]))
    """

    num_fingers = 5
    joints_per_finger = 3

    def __init__(
        self,
        dim: int = 256,
        *,
        num_heads: int = 4,
        mlp_dim: int = 1024,
        encoder_depth: int = 6,
        decoder_depth: int = 4,
        dropout: float = 0.1,
        num_betas: int = 10,
        finger_mask: bool = True,
        block_object_memory: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "PointPoseTransformer.__init__"
        self.dim = dim
        check_int(encoder_depth, name="encoder_depth", low=1, fn=fn)
        check_int(decoder_depth, name="decoder_depth", low=1, fn=fn)
        check_int(num_betas, name="num_betas", low=1, fn=fn)
        self.encoder = PointTransformerEncoder(
            dim, encoder_depth, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout, device=device, dtype=dtype
        )
        self.decoder_layers = nn.ModuleList(
            _QueryDecoderLayer(dim, num_heads, mlp_dim, dropout, device=device, dtype=dtype)
            for _ in range(decoder_depth)
        )
        _xavier_(self.decoder_layers)
        self.decoder_norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.num_rotations = 1 + self.num_fingers * self.joints_per_finger
        self.query_embed = nn.Parameter(torch.randn(self.num_rotations + 1, dim, device=device, dtype=dtype))
        self.block_object_memory = bool(block_object_memory)
        self.register_buffer(
            "query_mask",
            mano_query_mask(self.num_fingers, self.joints_per_finger, finger_mask=finger_mask, device=device),
            persistent=False,
        )
        self.rotation_head = relu_mlp([dim, dim, dim, 6], device=device, dtype=dtype)
        self.shape_head = relu_mlp([dim, dim, dim, num_betas], device=device, dtype=dtype)

    def decode(self, memory: torch.Tensor, num_hand: int) -> torch.Tensor:
        """Run the query decoder on an encoded memory whose first ``num_hand`` tokens are hand tokens.

        Returns:
            ``(L_dec, B, 17, dim)`` every decoder layer's output after the shared LayerNorm.
        """
        dims = check_shape(memory, f"B N {self.dim}", name="memory")
        check_int(num_hand, name="num_hand", low=1, high=dims["N"])
        num_queries = self.query_embed.shape[0]
        memory_mask = point_memory_mask(
            num_queries, num_hand, dims["N"] - num_hand, block_object=self.block_object_memory, device=memory.device
        )
        precision, (memory,) = fp32_on_cpu_bf16(memory)  # as in the encoder
        query_pos = self.query_embed.to(memory.dtype).expand(dims["B"], -1, -1)  # (B, 17, D)
        x = torch.zeros_like(query_pos)
        outputs = []
        with precision:
            for layer in self.decoder_layers:
                x = layer(x, query_pos, memory, self.query_mask, memory_mask)
                outputs.append(self.decoder_norm(x))
            return torch.stack(outputs)  # (L, B, 17, D)

    def forward(self, hand_tokens: torch.Tensor, object_tokens: torch.Tensor | None = None) -> PointPoseOutput:
        """Encode the tokens, decode the MANO queries, read out rotations and shape at every layer."""
        dims = check_shape(hand_tokens, f"B N {self.dim}", name="hand_tokens")
        if dims["N"] == 0:
            raise ShapeError(
                "PointPoseTransformer.forward(): argument 'hand_tokens' expected at least one token, got N=0"
            )
        tokens = hand_tokens
        if object_tokens is not None:
            check_shape(object_tokens, f"B M {self.dim}", name="object_tokens", dims=dims)
            tokens = torch.cat([hand_tokens, object_tokens], dim=1)  # (B, N_h + N_o, D)
        encoded = self.encoder(tokens)
        queries = self.decode(encoded.memory, dims["N"])  # (L, B, 17, D)
        rotation = self.rotation_head(queries[:, :, : self.num_rotations])  # (L, B, 16, 6)
        shape = self.shape_head(queries[:, :, self.num_rotations])  # (L, B, num_betas)
        return PointPoseOutput(rotation, shape, queries, encoded.intermediate[:, :, : dims["N"]], encoded.memory)


class _QueryDecoderLayer(nn.Module):
    """DETR post-norm decoder layer with query positions added at every attention (HOISDF's)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float, *, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True, **kw)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True, **kw)
        self.linear1 = nn.Linear(dim, mlp_dim, **kw)
        self.linear2 = nn.Linear(mlp_dim, dim, **kw)
        self.norm1 = nn.LayerNorm(dim, **kw)
        self.norm2 = nn.LayerNorm(dim, **kw)
        self.norm3 = nn.LayerNorm(dim, **kw)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        query_mask: torch.Tensor,
        memory_mask: torch.Tensor,
    ) -> torch.Tensor:
        q = x + query_pos
        attended = self.self_attn(q, q, x, attn_mask=~query_mask, need_weights=False)[0]
        x = self.norm1(x + self.dropout1(attended))
        read = self.cross_attn(x + query_pos, memory, memory, attn_mask=~memory_mask, need_weights=False)[0]
        x = self.norm2(x + self.dropout2(read))
        ff = self.linear2(self.dropout(torch.relu(self.linear1(x))))
        return self.norm3(x + self.dropout3(ff))


def _check_heads(dim: int, num_heads: int, fn: str) -> None:
    check_int(num_heads, name="num_heads", low=1, fn=fn)
    if dim % num_heads != 0:
        raise ValueRangeError(f"{fn}(): argument 'num_heads' expected to divide dim={dim}, got {num_heads}")


def _xavier_(module: nn.Module) -> None:
    """Xavier-uniform initialisation of every matrix (DETR / HOISDF ``_reset_parameters``)."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
