"""The masking contract shared by every masker, and the gather/un-shuffle helpers.

A masker returns :class:`MaskOutput` (MAE's contract, with a bool mask):

* ``mask`` ``(B, N)`` bool, ``True`` = masked (removed from the encoder input);
* ``ids_keep`` ``(B, L)`` int64, indices of the kept tokens, the same ``L`` for
  every sample so the batch stays dense;
* ``ids_restore`` ``(B, N)`` int64, the inverse permutation: concatenating the
  kept tokens and ``N - L`` mask tokens and gathering with ``ids_restore``
  puts every token back at its grid position.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hoimask._checks import ShapeError, check_shape

__all__ = ["MaskOutput", "mask_output_from_scores", "apply_mask", "restore"]


class MaskOutput(NamedTuple):
    """Result of a masker. See the module docstring for the contract."""

    mask: torch.Tensor  #: (B, N) bool, True = masked
    ids_keep: torch.Tensor  #: (B, L) int64
    ids_restore: torch.Tensor  #: (B, N) int64

    @property
    def num_keep(self) -> int:
        """L, the number of tokens every sample keeps."""
        return self.ids_keep.shape[1]


def mask_output_from_scores(scores: torch.Tensor, num_keep: int) -> MaskOutput:
    """Keep the ``num_keep`` tokens with the *lowest* score in each row.

    This is the vectorised core of every masker: build a per-token score (noise,
    plus large offsets for tokens that must be masked or kept), sort once.

    Args:
        scores: ``(B, N)`` float scores; ties are broken by the stable sort.
        num_keep: ``L``, 0 <= L <= N.

    Returns:
        :class:`MaskOutput` with ``ids_keep`` in ascending-score order.
    """
    B, N = scores.shape
    if not 0 <= num_keep <= N:
        raise ShapeError(f"mask_output_from_scores(): num_keep must be in [0, {N}], got {num_keep}")
    ids_shuffle = torch.argsort(scores, dim=1, stable=True)  # (B, N)
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, N)
    ids_keep = ids_shuffle[:, :num_keep]  # (B, L)
    mask = torch.ones(B, N, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, ids_keep, False)
    return MaskOutput(mask=mask, ids_keep=ids_keep, ids_restore=ids_restore)


def apply_mask(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Gather the kept tokens.

    Shape:
        tokens ``(B, N, D)``, ids_keep ``(B, L)`` -> ``(B, L, D)``.
    """
    dims = check_shape(tokens, "B N D", name="tokens")
    check_shape(ids_keep, "B L", name="ids_keep", dims=dims)
    index = ids_keep.unsqueeze(-1).expand(-1, -1, dims["D"])  # (B, L, D)
    return torch.gather(tokens, 1, index)


def restore(tokens_kept: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
    """Insert mask tokens and un-shuffle back to grid order.

    Args:
        tokens_kept: ``(B, L, D)`` kept tokens, in ``ids_keep`` order.
        ids_restore: ``(B, N)`` inverse permutation from the masker.
        mask_token: ``(D,)``, ``(1, 1, D)`` or broadcastable token used for masked positions.

    Returns:
        ``(B, N, D)`` tokens in grid order.
    """
    dims = check_shape(tokens_kept, "B L D", name="tokens_kept")
    check_shape(ids_restore, "B N", name="ids_restore", dims=dims)
    B, L, D = tokens_kept.shape
    N = ids_restore.shape[1]
    if L > N:
        raise ShapeError(f"restore(): tokens_kept has L={L} tokens but ids_restore has only N={N}")
    fill = mask_token.reshape(1, 1, D).to(tokens_kept.dtype).expand(B, N - L, D)
    full = torch.cat([tokens_kept, fill], dim=1)  # (B, N, D) in shuffled order
    index = ids_restore.unsqueeze(-1).expand(-1, -1, D)
    return torch.gather(full, 1, index)
