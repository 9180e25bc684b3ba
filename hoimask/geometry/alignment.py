"""Point-set alignment: similarity Procrustes (Umeyama) and scale+translation.

Used by the PA-/ST- metrics. All functions are batched over ``B`` and
differentiable (through ``torch.linalg.svd``; gradients are ill-defined for
degenerate point sets with repeated singular values).
"""

from __future__ import annotations

import torch

from hoimask._checks import DTypeError, check_floating, check_shape

__all__ = ["procrustes_align", "scale_translation_align", "similarity_procrustes"]


def similarity_procrustes(
    source: torch.Tensor, target: torch.Tensor, *, allow_reflection: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform from ``source`` onto ``target``.

    Finds ``scale``, ``R`` and ``t`` minimising
    ``Σ_n || scale * R @ source[n] + t - target[n] ||²`` (Umeyama, 1991).

    ``allow_reflection`` must be given explicitly because the benchmarks differ:

    * ``True`` — ``R`` is any orthogonal matrix (``det R = ±1``). This is what
      SciPy's ``orthogonal_procrustes`` returns and so what the official HO3D,
      FreiHAND and DexYCB evaluation code uses.
    * ``False`` — ``R`` is a proper rotation (``det R = +1``), the Kabsch/Umeyama
      correction (HOISDF's evaluation).

    A source with zero spread (all points equal) has no defined rotation; the
    result is then ``scale = 0``, ``R = I`` rotated by the SVD, and ``t`` the
    target's centroid, which is still the least-squares optimum.

    Args:
        source: ``(B, N, 3)`` points to move.
        target: ``(B, N, 3)`` points to match.
        allow_reflection: whether ``R`` may be a reflection (see above).

    Returns:
        ``scale (B,)``, ``R (B, 3, 3)``, ``t (B, 3)``.

    Example:
        >>> x = torch.randn(1, 10, 3, dtype=torch.float64)
        >>> s, R, t = similarity_procrustes(x, 2 * x + 1, allow_reflection=False)
        >>> bool(torch.allclose(s, torch.tensor([2.0], dtype=torch.float64)))
        True
    """
    if not isinstance(allow_reflection, bool):
        raise DTypeError(
            f"similarity_procrustes(): argument 'allow_reflection' expected a bool, got {allow_reflection!r}"
        )
    dims = check_shape(source, "B N D", name="source")
    check_shape(target, "B N D", name="target", dims=dims)
    check_floating(source, name="source")
    check_floating(target, name="target")
    mu_s = source.mean(1, keepdim=True)  # (B, 1, D)
    mu_t = target.mean(1, keepdim=True)
    xs = source - mu_s
    xt = target.to(source.dtype) - mu_t.to(source.dtype)
    cov = xt.transpose(1, 2) @ xs / source.shape[1]  # (B, D, D) = E[y xᵀ]
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.ones_like(S)
    if not allow_reflection:
        det = torch.linalg.det(U @ Vh)
        d[:, -1] = torch.where(det < 0, -1.0, 1.0).to(S.dtype)
    R = U @ torch.diag_embed(d) @ Vh  # (B, D, D)
    var_s = (xs * xs).sum((1, 2)) / source.shape[1]  # (B,)
    trace = (S * d).sum(-1)
    scale = torch.where(var_s > 0, trace / torch.where(var_s > 0, var_s, 1.0), torch.zeros_like(var_s))
    t = mu_t.squeeze(1).to(source.dtype) - scale[:, None] * (R @ mu_s.squeeze(1).unsqueeze(-1)).squeeze(-1)
    return scale, R, t


def procrustes_align(source: torch.Tensor, target: torch.Tensor, *, allow_reflection: bool) -> torch.Tensor:
    """``source`` moved by its best similarity transform onto ``target``.

    Shape:
        source, target ``(B, N, 3)`` -> ``(B, N, 3)``.
    """
    scale, R, t = similarity_procrustes(source, target, allow_reflection=allow_reflection)
    return scale[:, None, None] * source @ R.transpose(1, 2) + t[:, None, :]


def scale_translation_align(
    source: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares scale and translation (no rotation) from ``source`` to ``target``.

    Minimises ``Σ_n || scale * source[n] + t - target[n] ||²``:
    ``scale = <x̄, ȳ> / <x̄, x̄>`` over the centred sets, ``t = μ_t - scale μ_s``.
    (HO3D's ``align_sc_tr`` is a different, bone-based alignment: see
    ``hoimask.metrics.st_mpjpe``.)

    Returns:
        ``(aligned (B, N, 3), scale (B,), t (B, 3))``.
    """
    dims = check_shape(source, "B N D", name="source")
    check_shape(target, "B N D", name="target", dims=dims)
    check_floating(source, name="source")
    check_floating(target, name="target")
    mu_s = source.mean(1, keepdim=True)
    mu_t = target.mean(1, keepdim=True).to(source.dtype)
    xs = source - mu_s
    xt = target.to(source.dtype) - mu_t
    den = (xs * xs).sum((1, 2))
    num = (xs * xt).sum((1, 2))
    scale = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(den))
    t = (mu_t - scale[:, None, None] * mu_s).squeeze(1)
    aligned = scale[:, None, None] * source + t[:, None, :]
    return aligned, scale, t
