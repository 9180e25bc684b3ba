"""Silhouettes of triangle meshes in an image (for amodal hand masks of real datasets)."""

from __future__ import annotations

import numpy as np
import torch

from hoimask._checks import check_positive, check_shape
from hoimask.geometry import project

__all__ = ["mesh_silhouette"]


def mesh_silhouette(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixels covered by the projection of a mesh (its amodal mask).

    Triangles are filled with PIL's polygon rasteriser, whose coordinates follow
    the library convention (pixel ``(i, j)`` spans ``[j, j+1) × [i, i+1)``).
    Triangles with a vertex at ``z <= 0`` are skipped (behind the camera).

    Args:
        vertices: ``(V, 3)`` camera-frame vertices, metres.
        faces: ``(T, 3)`` int64 vertex indices.
        K: ``(3, 3)`` intrinsics.
        height: ``H``.
        width: ``W``.

    Returns:
        ``(H, W)`` bool mask.

    Shape:
        ``vertices (V, 3), faces (T, 3), K (3, 3) -> (H, W)``
    """
    from PIL import Image, ImageDraw

    check_shape(vertices, "V 3", name="vertices")
    check_shape(faces, "T 3", name="faces")
    check_shape(K, "3 3", name="K")
    check_positive(height, name="height")
    check_positive(width, name="width")
    v = vertices.detach().to(torch.float64).cpu()
    uv = project(v, K.detach().to(torch.float64).cpu()).numpy()
    front = (v[:, 2] > 0).numpy()
    f = faces.cpu().numpy()
    ok = front[f].all(axis=1)
    tri = uv[f[ok]]  # (T', 3, 2)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    inside = (hi[:, 0] >= 0) & (lo[:, 0] <= width) & (hi[:, 1] >= 0) & (lo[:, 1] <= height)
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for t in tri[inside].tolist():
        draw.polygon([tuple(p) for p in t], fill=1)
    return torch.from_numpy(np.asarray(canvas, dtype=bool).copy())
