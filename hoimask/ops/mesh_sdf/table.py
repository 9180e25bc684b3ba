"""Per-triangle constants shared by the Triton kernel and the clustered CPU search.

With ``a, b, c`` the corners, ``e0 = b - a``, ``e1 = c - a``, ``n = e0 x e1``,
one row holds ``a, e0, e1, n``, the Gram entries ``d00 = e0.e0``,
``d01 = e0.e1``, ``d11 = e1.e1``, ``d22 = |e1 - e0|^2`` and the reciprocals the
point-triangle distance needs, so that the per-pair work is dot products and
multiplications only.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["COLUMNS", "SLIVER_EPS", "TABLE_COLUMNS", "sliver", "triangle_table"]

#: A triangle whose corner angle at ``a`` has ``sin <= SLIVER_EPS * eps(dtype)`` counts as degenerate
#: (zero area up to rounding): its distance is the distance to its nearest edge, off by at most its
#: width. Ericson's regions and the plane projection are noise for such slivers.
SLIVER_EPS = 32.0


def sliver(nn: Tensor, d00: Tensor, d11: Tensor) -> Tensor:
    """Whether triangles with ``|n|^2 = nn``, ``|e0|^2 = d00``, ``|e1|^2 = d11`` are degenerate (see ``SLIVER_EPS``)."""
    return nn <= (SLIVER_EPS * torch.finfo(nn.dtype).eps) ** 2 * d00 * d11

#: Column names of :func:`triangle_table` (padded with zeros to ``TABLE_COLUMNS``).
COLUMNS = (
    "ax", "ay", "az", "e0x", "e0y", "e0z", "e1x", "e1y", "e1z", "nx", "ny", "nz",
    "d00", "d01", "d11", "d22", "inv_det", "inv_nn", "inv_d00", "inv_d11", "inv_d22", "valid",
)
TABLE_COLUMNS = 24  # padded


def triangle_table(vertices: Tensor, faces: Tensor) -> Tensor:
    """Per-triangle constants of the search, one row per triangle.

    Args:
        vertices: mesh vertices.
        faces: triangles (int64).

    Returns:
        A contiguous table whose columns are listed in ``COLUMNS``
        (``valid`` is 0 for degenerate triangles, whose interior test is
        skipped; reciprocals of zero are stored as 0).

    Shape:
        - vertices: ``(B, V, 3)``; faces: ``(T, 3)``; output: ``(B, T, 24)``
    """
    tri = vertices[:, faces]
    a = tri[:, :, 0]
    e0 = tri[:, :, 1] - a
    e1 = tri[:, :, 2] - a
    e2 = e1 - e0
    n = torch.linalg.cross(e0, e1, dim=-1)
    d00 = (e0 * e0).sum(-1)
    d01 = (e0 * e1).sum(-1)
    d11 = (e1 * e1).sum(-1)
    d22 = (e2 * e2).sum(-1)
    nn = (n * n).sum(-1)
    det = d00 * d11 - d01 * d01

    def inv(x: Tensor) -> Tensor:
        return torch.where(x == 0, torch.zeros_like(x), 1.0 / torch.where(x == 0, torch.ones_like(x), x))

    valid = (det > 0) & ~sliver(nn, d00, d11)
    scalars = (d00, d01, d11, d22, inv(det), inv(nn), inv(d00), inv(d11), inv(d22), valid.to(a.dtype))
    cols = [a, e0, e1, n] + [t.unsqueeze(-1) for t in scalars]
    table = torch.cat(cols, dim=-1)
    pad = table.new_zeros(*table.shape[:-1], TABLE_COLUMNS - table.shape[-1])
    return torch.cat([table, pad], dim=-1).contiguous()
