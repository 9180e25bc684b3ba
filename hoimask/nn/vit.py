"""Vision Transformer encoder that runs on the visible (kept) tokens only.

MAE's encoder (He et al. 2022): patchify, add positional embeddings, drop the
masked tokens *before* the transformer, so compute grows with the number of
kept tokens ``L`` rather than the grid size ``N``. Parameter names match
timm/MAE (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.i.*``,
``norm``), which is what :func:`hoimask.nn.load_vit_checkpoint` maps to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ShapeError, check_choice, check_int, check_positive, check_shape
from hoimask.encoding import POS_EMBED_RESIZE_METHODS, resize_pos_embed_2d, sincos_pos_embed_2d
from hoimask.masking.base import MaskOutput, apply_mask
from hoimask.nn.mask_token import _replace_masked_tokens
from hoimask.nn.patch_embed import PatchEmbed
from hoimask.nn.transformer import Block

__all__ = ["ViTConfig", "VIT_CONFIGS", "EncoderOutput", "ViTEncoder", "vit_tiny", "vit_small", "vit_base", "vit_large"]


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a :class:`ViTEncoder` (keyword names as in the ViT/MAE papers)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224
    in_chans: int = 3
    qkv_bias: bool = True
    class_token: bool = True
    pos_embed: str = "sincos"
    pos_embed_resize: str = "mae"

    def __post_init__(self) -> None:
        _check_vit_sizes("ViTConfig", self.embed_dim, self.depth, self.num_heads, self.mlp_ratio, self.patch_size,
                         self.img_size, self.in_chans)
        check_choice(self.pos_embed, ("sincos", "learned"), name="pos_embed", fn="ViTConfig")
        check_choice(self.pos_embed_resize, POS_EMBED_RESIZE_METHODS, name="pos_embed_resize", fn="ViTConfig")


def _check_vit_sizes(fn: str, embed_dim, depth, num_heads, mlp_ratio, patch_size, img_size, in_chans) -> None:
    """Sizes shared by :class:`ViTConfig` and :class:`ViTEncoder`: ints >= 1, ``mlp_ratio > 0``."""
    for name, value in (("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads),
                        ("patch_size", patch_size), ("img_size", img_size), ("in_chans", in_chans)):
        check_int(value, name=name, low=1, fn=fn)
    check_positive(mlp_ratio, name="mlp_ratio", fn=fn)


#: The standard ViT sizes (patch 16, 224 px), as in timm and MAE.
VIT_CONFIGS: dict[str, ViTConfig] = {
    "vit_tiny": ViTConfig(embed_dim=192, depth=12, num_heads=3),
    "vit_small": ViTConfig(embed_dim=384, depth=12, num_heads=6),
    "vit_base": ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "vit_large": ViTConfig(embed_dim=1024, depth=24, num_heads=16),
}


class EncoderOutput(NamedTuple):
    """What :class:`ViTEncoder` returns."""

    tokens: torch.Tensor  #: (B, L, D) kept patch tokens after the final norm, in ``ids_keep`` order
    cls_token: torch.Tensor | None  #: (B, D) class token after the final norm, or None
    layers: tuple[torch.Tensor, ...]  #: outputs (B, L, D) of the blocks named in ``return_layers`` (no norm)


class ViTEncoder(nn.Module):
    """ViT encoder with pre-norm blocks that encodes only the visible tokens.

    Args:
        img_size: the image side the positional embedding is built for; other
            sizes work (the embedding is recomputed for sin-cos, resized with
            ``pos_embed_resize`` when learned).
        patch_size: P.
        in_chans: image channels.
        embed_dim: token size D.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size relative to D.
        qkv_bias: bias on the attention's ``qkv`` projection.
        class_token: prepend a learned class token (MAE does).
        pos_embed: ``"sincos"`` (fixed 2D sin-cos, MAE) or ``"learned"``.
            :func:`~hoimask.nn.load_vit_checkpoint` turns a sin-cos encoder into
            a learned one when the checkpoint's embedding is learned (see
            :meth:`use_learned_pos_embed`).
        pos_embed_resize: how a learned embedding is resized for another
            grid: ``"mae"`` (bicubic, MAE's ``interpolate_pos_embed``) or
            ``"timm"`` (bicubic, antialiased, timm's ``resample_abs_pos_embed``);
            see :func:`~hoimask.encoding.resize_pos_embed_2d`.

    Shape:
        image ``(B, C, H, W)``, mask with ``ids_keep (B, L)`` over the
        ``N = (H/P)(W/P)`` grid -> :class:`EncoderOutput` with tokens ``(B, L, D)``.

    Example:
        >>> enc = ViTEncoder(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)
        >>> enc(torch.zeros(2, 3, 32, 32)).tokens.shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        class_token: bool = True,
        pos_embed: str = "sincos",
        pos_embed_resize: str = "mae",
        norm_layer: type[nn.Module] = nn.LayerNorm,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check_vit_sizes("ViTEncoder", embed_dim, depth, num_heads, mlp_ratio, patch_size, img_size, in_chans)
        check_choice(pos_embed, ("sincos", "learned"), name="pos_embed")
        check_choice(pos_embed_resize, POS_EMBED_RESIZE_METHODS, name="pos_embed_resize")
        self.config = ViTConfig(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            img_size=img_size,
            in_chans=in_chans,
            qkv_bias=qkv_bias,
            class_token=class_token,
            pos_embed=pos_embed,
            pos_embed_resize=pos_embed_resize,
        )
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, device=device, dtype=dtype)
        self.grid_size = self.patch_embed.grid_size(img_size, img_size)
        self.num_prefix_tokens = 1 if class_token else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, device=device, dtype=dtype)) if class_token else None
        n = self.grid_size[0] * self.grid_size[1] + self.num_prefix_tokens
        # Prefix positions (class token) get a zero embedding, as in MAE.
        self.pos_embed = nn.Parameter(
            torch.zeros(1, n, embed_dim, device=device, dtype=dtype), requires_grad=pos_embed == "learned"
        )
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=norm_layer, device=device, dtype=dtype)
            for _ in range(depth)
        )
        self.norm = norm_layer(embed_dim, eps=1e-6, device=device, dtype=dtype)
        self.reset_parameters()

    @classmethod
    def from_config(cls, name: str | ViTConfig, **overrides) -> ViTEncoder:
        """Build a standard size (``"vit_tiny"``, ``"vit_small"``, ``"vit_base"``, ``"vit_large"``).

        Args:
            name: a key of :data:`VIT_CONFIGS` or a :class:`ViTConfig`.
            **overrides: any constructor keyword (e.g. ``img_size=128``, ``depth=4``).

        Returns:
            The encoder.
        """
        if isinstance(name, ViTConfig):
            config = name
        else:
            check_choice(name, tuple(VIT_CONFIGS), name="name")
            config = VIT_CONFIGS[name]
        return cls(**{**asdict(config), **overrides})

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """MAE initialisation: sin-cos positions, xavier patch projection and linears."""
        gh, gw = self.grid_size
        sincos = sincos_pos_embed_2d(gh, gw, self.embed_dim).to(self.pos_embed)
        self.pos_embed.zero_()
        if self.config.pos_embed == "sincos":
            self.pos_embed[0, self.num_prefix_tokens :] = sincos
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def patch_positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Positional embedding of the patch tokens for a ``grid_h x grid_w`` grid.

        Returns:
            ``(1, grid_h * grid_w, D)``: the stored embedding when the grid is the
            one built for; otherwise sin-cos recomputed (fixed) or the learned
            embedding resized with ``config.pos_embed_resize``
            (:func:`~hoimask.encoding.resize_pos_embed_2d`, differentiable).
        """
        p = self.num_prefix_tokens
        stored = self.pos_embed[:, p:]
        if (grid_h, grid_w) == self.grid_size:
            return stored
        if self.config.pos_embed == "sincos":
            return sincos_pos_embed_2d(grid_h, grid_w, self.embed_dim).to(stored)[None]
        return resize_pos_embed_2d(stored, (grid_h, grid_w), old_grid=self.grid_size,
                                   method=self.config.pos_embed_resize)

    @torch.no_grad()
    def use_learned_pos_embed(self, pos_embed: torch.Tensor, *, resize: str | None = None) -> None:
        """Hold ``pos_embed`` as a learned (trainable) position embedding.

        A sin-cos encoder becomes a learned one: ``config.pos_embed`` becomes
        ``"learned"``, the ``pos_embed`` parameter takes the values and
        ``requires_grad=True`` (build the optimizer afterwards), and other grids
        resize it instead of recomputing sin-cos. This is what
        :func:`~hoimask.nn.load_vit_checkpoint` does with a checkpoint's learned
        embedding (timm's ViTs), so that it is not replaced by sin-cos at other
        image sizes.

        Args:
            pos_embed: ``(1, P + gh·gw, D)`` for this encoder's grid (``P`` = 1
                with a class token; its position comes first).
            resize: ``"mae"`` or ``"timm"``: the new ``config.pos_embed_resize``;
                ``None`` keeps the current one.

        Raises:
            ShapeError: ``pos_embed`` does not have the shape of the ``pos_embed`` parameter.
            ValueRangeError: bad ``resize``.

        Shape:
            ``pos_embed (1, P + gh·gw, D)``; the encoder's output shapes do not change.
        """
        fn = "ViTEncoder.use_learned_pos_embed"
        if resize is not None:
            check_choice(resize, POS_EMBED_RESIZE_METHODS, name="resize", fn=fn)
        check_shape(pos_embed, " ".join(str(n) for n in self.pos_embed.shape), name="pos_embed", fn=fn)
        self.pos_embed.copy_(pos_embed)
        self.pos_embed.requires_grad_(True)
        self.config = replace(self.config, pos_embed="learned",
                              pos_embed_resize=resize if resize is not None else self.config.pos_embed_resize)

    def _embed(self, image: torch.Tensor) -> tuple[torch.Tensor, int]:
        check_shape(image, f"B {self.config.in_chans} H W", name="image", fn="ViTEncoder.forward")
        gh, gw = self.patch_embed.grid_size(image.shape[-2], image.shape[-1])
        x = self.patch_embed(image) + self.patch_positions(gh, gw)  # (B, N, D)
        return x, gh * gw

    def _prefix(self, x: torch.Tensor) -> torch.Tensor:
        if self.cls_token is None:
            return x
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1)

    def _resolve_layers(self, return_layers) -> list[int]:
        if return_layers is None:
            return []
        depth = len(self.blocks)
        out = []
        for i in return_layers:
            j = i + depth if i < 0 else i
            if not 0 <= j < depth:
                raise ShapeError(f"ViTEncoder.forward(): argument 'return_layers' entries must lie in [-{depth}, {depth}), got {i}")
            out.append(j)
        return out

    def _check_mask(self, mask: MaskOutput, batch: int, num_tokens: int) -> None:
        dims = {"B": batch, "N": num_tokens}
        check_shape(mask.ids_keep, "B L", name="mask.ids_keep", dims=dims, fn="ViTEncoder.forward")
        check_shape(mask.ids_restore, "B N", name="mask.ids_restore", dims=dims, fn="ViTEncoder.forward")

    def _run(self, x: torch.Tensor, layers: list[int], attn_mask: torch.Tensor | None) -> tuple[torch.Tensor, list]:
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask=attn_mask)
            if i in layers:
                taps.append(x)
        return self.norm(x), taps

    def forward(
        self,
        image: torch.Tensor,
        mask: MaskOutput | None = None,
        *,
        return_layers: list[int] | tuple[int, ...] | None = None,
    ) -> EncoderOutput:
        """Encode the visible patches of ``image``.

        Args:
            image: ``(B, C, H, W)`` image (normalised by the model that owns the encoder); sides multiples of P.
            mask: the masker's output over the ``(H/P, W/P)`` grid; ``None``
                keeps every token (fine-tuning / inference).
            return_layers: block indices (negative counts from the end) whose
                outputs are returned in ``layers``.

        Returns:
            :class:`EncoderOutput`; ``tokens`` ``(B, L, D)`` in ``mask.ids_keep`` order.
        """
        x, n = self._embed(image)  # (B, N, D)
        layers = self._resolve_layers(return_layers)
        if mask is not None:
            self._check_mask(mask, x.shape[0], n)
            x = apply_mask(x, mask.ids_keep)  # (B, L, D)
        x, taps = self._run(self._prefix(x), layers, None)
        p = self.num_prefix_tokens
        cls = x[:, 0] if p else None
        return EncoderOutput(x[:, p:], cls, tuple(t[:, p:] for t in taps))

    def forward_attention_masked(
        self,
        image: torch.Tensor,
        mask: MaskOutput,
        *,
        return_layers: list[int] | tuple[int, ...] | None = None,
    ) -> EncoderOutput:
        """Reference twin of :meth:`forward`: all N tokens, attention restricted to the kept ones.

        Runs the full grid through the blocks with an attention mask that lets
        every token attend only to the kept tokens (and the class token), then
        gathers the kept tokens. Costs O(N^2) and exists so tests can prove that
        dropping tokens is exactly equivalent.

        Args:
            image: ``(B, C, H, W)``.
            mask: the masker's output.
            return_layers: as in :meth:`forward`.

        Returns:
            :class:`EncoderOutput`, equal to ``forward(image, mask)`` up to rounding.
        """
        x, n = self._embed(image)
        layers = self._resolve_layers(return_layers)
        self._check_mask(mask, x.shape[0], n)
        B = x.shape[0]
        p = self.num_prefix_tokens
        allowed = torch.cat([mask.mask.new_zeros(B, p), mask.mask], dim=1).logical_not()  # (B, p+N)
        attn_mask = allowed[:, None, None, :]  # (B, 1, 1, p+N): keys each query may attend to
        x, taps = self._run(self._prefix(x), layers, attn_mask)

        def gather(t: torch.Tensor) -> torch.Tensor:
            return apply_mask(t[:, p:], mask.ids_keep)

        return EncoderOutput(gather(x), x[:, 0] if p else None, tuple(gather(t) for t in taps))

    def forward_mask_tokens(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | MaskOutput | None,
        mask_token: torch.Tensor,
        *,
        return_layers: list[int] | tuple[int, ...] | None = None,
    ) -> EncoderOutput:
        """BEiT / iBOT input path: all N tokens through the blocks, the masked ones replaced by ``mask_token``.

        ``ẑ = M ⊙ p_mask + (1 − M) ⊙ z`` on the patch embeddings (HandMIM §2.1,
        :func:`~hoimask.nn.replace_masked_tokens`), then the position embedding,
        the class token and the blocks, exactly as :meth:`forward` with no mask.
        The encoder holds no mask token: :class:`~hoimask.nn.MaskTokenEncoder`
        owns it, so this encoder's checkpoint keys do not change.

        Args:
            image: ``(B, C, H, W)``; sides multiples of P.
            mask: ``(B, N)`` bool, ``True`` = masked (any number per sample), a
                :class:`~hoimask.masking.MaskOutput`, or ``None`` (nothing masked:
                the same result as ``forward(image)``).
            mask_token: ``(D,)`` or ``(1, 1, D)``.
            return_layers: as in :meth:`forward`; taps cover the full grid.

        Returns:
            :class:`EncoderOutput` with ``tokens (B, N, D)`` in grid order.

        Raises:
            ShapeError: ``mask`` is not ``(B, N)`` for this image's grid, or ``mask_token`` not of size D.
            DTypeError: ``mask`` is not bool.
        """
        check_shape(image, f"B {self.config.in_chans} H W", name="image", fn="ViTEncoder.forward_mask_tokens")
        gh, gw = self.patch_embed.grid_size(image.shape[-2], image.shape[-1])
        layers = self._resolve_layers(return_layers)
        x = self.patch_embed(image)  # (B, N, D)
        if mask is not None:
            x = _replace_masked_tokens(x, mask, mask_token, "ViTEncoder.forward_mask_tokens")  # (B, N, D)
        x = x + self.patch_positions(gh, gw)  # (B, N, D)
        x, taps = self._run(self._prefix(x), layers, None)
        p = self.num_prefix_tokens
        return EncoderOutput(x[:, p:], x[:, 0] if p else None, tuple(t[:, p:] for t in taps))


def _factory(name: str):
    def build(**overrides) -> ViTEncoder:
        return ViTEncoder.from_config(name, **overrides)

    cfg = VIT_CONFIGS[name]
    build.__name__ = name
    build.__doc__ = (
        f"Build a {name.replace('_', '-').upper()}/16 encoder (D={cfg.embed_dim}, depth {cfg.depth}, "
        f"{cfg.num_heads} heads).\n\n    Args:\n        **overrides: constructor keywords.\n\n"
        f"    Returns:\n        :class:`ViTEncoder`.\n\n    Shape:\n        see :class:`ViTEncoder`.\n"
    )
    return build


#: ``vit_tiny(**overrides)``: a ViT-Ti/16 :class:`ViTEncoder` (D=192, depth 12, 3 heads);
#: keywords override any constructor argument (see :meth:`ViTEncoder.from_config`).
vit_tiny = _factory("vit_tiny")
#: ``vit_small(**overrides)``: a ViT-S/16 :class:`ViTEncoder` (D=384, depth 12, 6 heads);
#: keywords override any constructor argument (see :meth:`ViTEncoder.from_config`).
vit_small = _factory("vit_small")
#: ``vit_base(**overrides)``: a ViT-B/16 :class:`ViTEncoder` (D=768, depth 12, 12 heads);
#: keywords override any constructor argument (see :meth:`ViTEncoder.from_config`).
vit_base = _factory("vit_base")
#: ``vit_large(**overrides)``: a ViT-L/16 :class:`ViTEncoder` (D=1024, depth 24, 16 heads);
#: keywords override any constructor argument (see :meth:`ViTEncoder.from_config`).
vit_large = _factory("vit_large")

