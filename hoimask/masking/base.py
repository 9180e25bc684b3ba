"""The masking contract shared by every masker, and the gather/un-shuffle helpers.

A masker returns :class:`MaskOutput` (MAE's contract, with a bool mask):

* ``mask`` ``(B, N)`` bool, ``True`` = masked (removed from the encoder input);
* ``ids_keep`` ``(B, L)`` int64, indices of the kept tokens, the same ``L`` for
  every sample so the batch stays dense;
* ``ids_restore`` ``(B, N)`` int64, the inverse permutation: concatenating the
  kept tokens and ``N - L`` mask tokens and gathering with ``ids_restore``
  puts every token back at its grid position;
* ``fallback`` ``(B,)`` bool, ``True`` for the samples whose guidance input the
  masker needed but could not use (non-finite ``joints_2d``: no hand
  annotation) and that were masked by the masker's documented fallback
  instead. Every hoimask masker fills it (all ``False`` for maskers that use
  no joints); ``None`` only in outputs built by hand.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hoimask._checks import ShapeError, check_shape

__all__ = ["MaskOutput", "mask_output_from_scores", "mask_output_from_keep", "apply_mask", "restore"]


class MaskOutput(NamedTuple):
    """Result of a masker. See the module docstring for the contract."""

    mask: torch.Tensor  #: (B, N) bool, True = masked
    ids_keep: torch.Tensor  #: (B, L) int64
    ids_restore: torch.Tensor  #: (B, N) int64
    fallback: torch.Tensor | None = None  #: (B,) bool, True = guidance unusable, fallback masking used

    @property
    def num_keep(self) -> int:
        """L, the number of tokens every sample keeps."""
        return self.ids_keep.shape[1]

    @property
    def num_fallback(self) -> int:
        """How many samples were masked by the fallback (0 when ``fallback`` is ``None``)."""
        return 0 if self.fallback is None else int(self.fallback.sum())


def mask_output_from_scores(scores: torch.Tensor, num_keep: int) -> MaskOutput:
    """Keep the ``num_keep`` tokens with the *lowest* score in each row.

    This is the vectorised core of every masker: build a per-token score (noise,
    plus large offsets for tokens that must be masked or kept), sort once.

    Args:
        scores: ``(B, N)`` float scores; ties are broken by the stable sort.
        num_keep: ``L``, 0 <= L <= N.

    Returns:
        :class:`MaskOutput` with ``ids_keep`` in ascending-score order and
        ``fallback`` all ``False``.

    Shape:
        scores ``(B, N)`` -> mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.

    Example:
        >>> out = mask_output_from_scores(torch.tensor([[0.3, 0.1, 0.2]]), 2)
        >>> out.ids_keep.tolist(), out.mask.tolist()
        ([[1, 2]], [[True, False, False]])
    """
    check_shape(scores, "B N", name="scores")
    B, N = scores.shape
    if not 0 <= num_keep <= N:
        raise ShapeError(f"mask_output_from_scores(): num_keep must be in [0, {N}], got {num_keep}")
    ids_shuffle = torch.argsort(scores, dim=1, stable=True)  # (B, N)
    # Inverse permutation by a scatter (same result as a second argsort, O(N)).
    positions = torch.arange(N, device=scores.device).expand(B, N)
    ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, positions)  # (B, N)
    ids_keep = ids_shuffle[:, :num_keep]  # (B, L)
    mask = torch.ones(B, N, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, ids_keep, False)
    fallback = torch.zeros(B, dtype=torch.bool, device=scores.device)
    return MaskOutput(mask=mask, ids_keep=ids_keep, ids_restore=ids_restore, fallback=fallback)


def mask_output_from_keep(keep: torch.Tensor, num_keep: int) -> MaskOutput:
    """Build the contract from a bool keep-mask with exactly ``num_keep`` ``True`` per row.

    The kept tokens are listed in ascending grid order (no sort is needed:
    positions come from a cumulative sum), so ``ids_keep`` is deterministic
    given the mask.

    Args:
        keep: ``(B, N)`` bool, ``True`` = kept (visible).
        num_keep: ``L``, the number of ``True`` in every row.

    Returns:
        :class:`MaskOutput` with ``mask = ~keep`` and ``fallback`` all ``False``.

    Raises:
        ShapeError: a row does not keep exactly ``num_keep`` tokens.

    Shape:
        keep ``(B, N)`` -> mask ``(B, N)``, ids_keep ``(B, L)``, ids_restore ``(B, N)``.
    """
    check_shape(keep, "B N", name="keep")
    B, N = keep.shape
    kept = keep.sum(dim=1)
    if bool((kept != num_keep).any()):
        raise ShapeError(
            f"mask_output_from_keep(): argument 'keep' must keep exactly num_keep={num_keep} tokens "
            f"per row, got counts in [{int(kept.min())}, {int(kept.max())}]"
        )
    return _keep_to_output(keep, num_keep)


def _keep_to_output(keep: torch.Tensor, num_keep: int, fallback: torch.Tensor | None = None) -> MaskOutput:
    """Unchecked core of :func:`mask_output_from_keep` (the maskers guarantee the count).

    ``fallback`` ``(B,)`` bool marks samples masked by a fallback; ``None`` means none.
    """
    B, N = keep.shape
    keep_long = keep.long()
    # Position of every token in the shuffled order: kept first (grid order), then masked.
    pos_kept = keep_long.cumsum(dim=1) - 1  # (B, N)
    pos_masked = num_keep + (1 - keep_long).cumsum(dim=1) - 1  # (B, N)
    ids_restore = torch.where(keep, pos_kept, pos_masked)  # (B, N)
    grid = torch.arange(N, device=keep.device).expand(B, N)
    ids_shuffle = torch.empty_like(ids_restore).scatter_(1, ids_restore, grid)  # (B, N)
    if fallback is None:
        fallback = torch.zeros(B, dtype=torch.bool, device=keep.device)
    return MaskOutput(mask=~keep, ids_keep=ids_shuffle[:, :num_keep], ids_restore=ids_restore, fallback=fallback)


def apply_mask(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Gather the kept tokens.

    Args:
        tokens: all ``N`` tokens in grid order.
        ids_keep: indices of the tokens to keep (from a masker).

    Returns:
        The kept tokens, in ``ids_keep`` order.

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

    Shape:
        tokens_kept ``(B, L, D)``, ids_restore ``(B, N)``, mask_token ``(D,)`` -> ``(B, N, D)``.
    """
    dims = check_shape(tokens_kept, "B L D", name="tokens_kept")
    check_shape(ids_restore, "B N", name="ids_restore", dims=dims)
    B, L, D = tokens_kept.shape
    N = ids_restore.shape[1]
    if L > N:
        raise ShapeError(f"restore(): tokens_kept has L={L} tokens but ids_restore has only N={N}")
    if mask_token.numel() != D:
        raise ShapeError(
            f"restore(): argument 'mask_token' expected D={D} values (shape (D,) or (1, 1, D)), "
            f"got shape {tuple(mask_token.shape)}"
        )
    fill = mask_token.reshape(1, 1, D).to(tokens_kept.dtype).expand(B, N - L, D)
    full = torch.cat([tokens_kept, fill], dim=1)  # (B, N, D) in shuffled order
    index = ids_restore.unsqueeze(-1).expand(-1, -1, D)
    return torch.gather(full, 1, index)
