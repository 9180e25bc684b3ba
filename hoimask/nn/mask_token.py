"""BEiT / iBOT input corruption: masked patch tokens replaced by a learned mask token.

HandMIM §2.1: ``ẑ = M ⊙ p_mask + (1 − M) ⊙ z`` — the masked patch embeddings
``z`` are replaced by the mask token ``p_mask`` and **all** ``N`` tokens (plus
the class token) run through the encoder, unlike MAE's visible-tokens-only
path (:meth:`hoimask.nn.ViTEncoder.forward`). As in BEiT and iBOT the
replacement happens right after the patch embedding, before the position
embedding is added, so every mask token still knows its grid position.

**Decision: the mask token lives outside the encoder**, in
:class:`MaskTokenEncoder` (``encoder.*`` + ``mask_token``). The encoder's
``state_dict`` keeps exactly its old keys, so

* encoder checkpoints written before (``MaskHOI.encoder_state_dict()``,
  ``encoder.pt``, MAE / timm files) load into the HandMIM student unchanged,
  and the HandMIM encoder (``wrapper.encoder.state_dict()``) loads into every
  fine-tuning model, whose loader (``load_encoder_weights``) demands an exact
  key match;
* fine-tuning models do not carry a parameter that never receives a gradient
  (which DDP refuses without ``find_unused_parameters``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from hoimask._checks import DTypeError, check_dtype, check_positive, check_shape
from hoimask.masking.base import MaskOutput

if TYPE_CHECKING:  # the encoder module imports this one
    from hoimask.nn.vit import EncoderOutput, ViTEncoder

__all__ = ["replace_masked_tokens", "MaskTokenEncoder"]


def _mask_tensor(mask: torch.Tensor | MaskOutput, fn: str) -> torch.Tensor:
    """The ``(B, N)`` bool tensor of a mask given as a tensor or a :class:`MaskOutput`."""
    if isinstance(mask, MaskOutput):
        return mask.mask
    if not isinstance(mask, torch.Tensor):
        raise DTypeError(f"{fn}(): argument 'mask' expected a (B, N) bool tensor or a MaskOutput, "
                         f"got {type(mask).__name__}")
    return mask


def replace_masked_tokens(
    tokens: torch.Tensor, mask: torch.Tensor | MaskOutput, mask_token: torch.Tensor
) -> torch.Tensor:
    """``ẑ = M ⊙ p_mask + (1 − M) ⊙ z``: put ``mask_token`` at every masked position.

    A selection, not an arithmetic blend: the masked tokens' values (even NaN)
    do not reach the output, nor does any gradient flow back to them.

    Args:
        tokens: ``(B, N, D)`` patch tokens ``z`` (grid order).
        mask: ``(B, N)`` bool, ``True`` = masked, or a :class:`~hoimask.masking.MaskOutput`
            (its ``mask``). Samples may mask different numbers of tokens.
        mask_token: the learned ``p_mask``, ``(D,)`` or ``(1, 1, D)``.

    Returns:
        ``(B, N, D)`` tokens in the dtype of ``tokens``.

    Raises:
        ShapeError: shapes do not match.
        DTypeError: ``mask`` is not bool.

    Shape:
        tokens ``(B, N, D)``, mask ``(B, N)``, mask_token ``(D,)`` -> ``(B, N, D)``.

    Example:
        >>> z = torch.ones(1, 3, 2)
        >>> replace_masked_tokens(z, torch.tensor([[False, True, False]]), torch.zeros(2))[0, :, 0].tolist()
        [1.0, 0.0, 1.0]
    """
    return _replace_masked_tokens(tokens, mask, mask_token, "replace_masked_tokens")


def _replace_masked_tokens(tokens: torch.Tensor, mask, mask_token: torch.Tensor, fn: str) -> torch.Tensor:
    """:func:`replace_masked_tokens` with errors naming ``fn``."""
    dims = check_shape(tokens, "B N D", name="tokens", fn=fn)
    mask = _mask_tensor(mask, fn)
    check_shape(mask, "B N", name="mask", dims=dims, fn=fn)
    check_dtype(mask, torch.bool, name="mask", fn=fn)
    if not isinstance(mask_token, torch.Tensor) or mask_token.numel() != dims["D"] or mask_token.dim() not in (1, 3):
        check_shape(mask_token, "1 1 D", name="mask_token", dims=dims, fn=fn)  # raises the typed error
    return torch.where(mask[..., None], mask_token.reshape(1, 1, -1).to(tokens.dtype), tokens)  # (B, N, D)


class MaskTokenEncoder(nn.Module):
    """A :class:`~hoimask.nn.ViTEncoder` fed BEiT / iBOT style: masked patches become a learned mask token.

    The HandMIM student (masked views) and teacher (``mask=None``, full views)
    are two copies of this module. All ``N`` patch tokens come out, in grid
    order. ``self.encoder`` is an ordinary encoder: save, load and fine-tune
    it as any other (module docstring: why the token is kept here).

    Args:
        encoder: the encoder whose blocks and embeddings are used.
        init_std: standard deviation of the truncated-normal initialisation of
            the mask token (BEiT's 0.02).

    Shape:
        image ``(B, C, H, W)``, mask ``(B, N)`` bool -> :class:`~hoimask.nn.EncoderOutput`
        with tokens ``(B, N, D)``, cls_token ``(B, D)``, layers ``(B, N, D)`` each.

    Example:
        >>> from hoimask.nn import ViTEncoder
        >>> net = MaskTokenEncoder(ViTEncoder(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2))
        >>> mask = torch.zeros(2, 16, dtype=torch.bool)
        >>> mask[:, :5] = True
        >>> net(torch.rand(2, 3, 32, 32), mask).tokens.shape
        torch.Size([2, 16, 16])
    """

    def __init__(self, encoder: ViTEncoder, *, init_std: float = 0.02) -> None:
        super().__init__()
        if not hasattr(encoder, "forward_mask_tokens"):
            raise DTypeError(f"MaskTokenEncoder(): argument 'encoder' expected a ViTEncoder, got {type(encoder).__name__}")
        check_positive(init_std, name="init_std", strict=False, fn="MaskTokenEncoder")
        self.encoder = encoder
        w = encoder.pos_embed
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim, device=w.device, dtype=w.dtype))
        nn.init.trunc_normal_(self.mask_token, std=init_std)

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | MaskOutput | None = None,
        *,
        return_layers: list[int] | tuple[int, ...] | None = None,
    ) -> EncoderOutput:
        """Encode every patch of ``image``, the masked ones as the mask token.

        Args:
            image: ``(B, C, H, W)`` (normalised by the owning model).
            mask: ``(B, N)`` bool, ``True`` = masked, or a ``MaskOutput``;
                ``None`` masks nothing (the teacher's full view).
            return_layers: block indices whose outputs are returned (full grid).

        Returns:
            :class:`~hoimask.nn.EncoderOutput`, ``tokens (B, N, D)``.
        """
        return self.encoder.forward_mask_tokens(image, mask, self.mask_token, return_layers=return_layers)
