"""Rotation representations: 6D, axis-angle, quaternion and matrix.

Every function accepts any number of leading batch dimensions, keeps the
input's dtype and device, and is differentiable (float64 gradcheck in the
tests). Conventions:

* rotation matrices act on column vectors: ``x' = R @ x``;
* 6D is the first two **columns** of the matrix concatenated,
  ``(R[:, 0], R[:, 1])`` (Zhou et al., CVPR 2019), mapped back by Gram–Schmidt;
* axis-angle is ``angle * unit_axis`` with the angle in radians;
* quaternions are ``(w, x, y, z)``, scalar first; ``matrix_to_quaternion``
  returns the one with ``w >= 0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hoimask._checks import check_floating, check_shape

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rotation_6d_to_matrix",
    "skew",
]

# Below this squared angle the closed forms switch to Taylor series.
_SMALL_SQ = 1e-6


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` such that ``[v]_x @ u == cross(v, u)``.

    Shape:
        v ``(..., 3)`` -> ``(..., 3, 3)``.
    """
    check_shape(v, "... 3", name="v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).unflatten(-1, (3, 3))


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Map the 6D representation to a rotation matrix by Gram–Schmidt.

    The first three numbers give the first column (normalised), the last three
    the second column after removing its component along the first; the third
    column is their cross product, so the result is always a proper rotation.

    Args:
        d6: ``(..., 6)`` first two columns, ``(a1, a2)``; need not be orthonormal.

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Example:
        >>> R = rotation_6d_to_matrix(torch.tensor([1.0, 0, 0, 0, 1, 0]))
        >>> torch.equal(R, torch.eye(3))
        True
    """
    check_shape(d6, "... 6", name="d6")
    check_floating(d6, name="d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)  # columns


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """First two columns of a rotation matrix, concatenated.

    Shape:
        matrix ``(..., 3, 3)`` -> ``(..., 6)``.
    """
    check_shape(matrix, "... 3 3", name="matrix")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, ``R = I + sinc(θ) [v]_x + (1 - cos θ)/θ² [v]_x²``.

    Uses Taylor series for small angles so values and gradients stay finite at
    (and near) the zero rotation.

    Shape:
        axis_angle ``(..., 3)`` -> ``(..., 3, 3)``.
    """
    check_shape(axis_angle, "... 3", name="axis_angle")
    check_floating(axis_angle, name="axis_angle")
    theta_sq = (axis_angle * axis_angle).sum(-1)  # (...)
    small = theta_sq < _SMALL_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = safe_sq.sqrt()
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq**2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24 + theta_sq**2 / 720, (1 - torch.cos(theta)) / safe_sq)
    k = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a quaternion ``(w, x, y, z)`` (normalised first).

    Shape:
        quaternion ``(..., 4)`` -> ``(..., 3, 3)``.
    """
    check_shape(quaternion, "... 4", name="quaternion")
    check_floating(quaternion, name="quaternion")
    w, x, y, z = F.normalize(quaternion, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix.

    Shepperd's method: of the four algebraically equivalent formulas, the one
    with the largest (best conditioned) denominator is used per element, so the
    result is accurate at every angle including π.

    Shape:
        matrix ``(..., 3, 3)`` -> ``(..., 4)``.
    """
    check_shape(matrix, "... 3 3", name="matrix")
    check_floating(matrix, name="matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (w², x², y², z²) — one of them is >= 1, so its sqrt is well away from 0.
    diag = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    # Clamp only the unselected branches' inputs away from 0 so their (discarded)
    # gradients stay finite; the selected branch has diag >= 1.
    root = diag.clamp_min(0.1).sqrt()  # (..., 4) = 2|q_i| on the selected branch
    s01, s02, s12 = m01 + m10, m02 + m20, m12 + m21
    d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
    cands = torch.stack(
        [
            torch.stack([root[..., 0] ** 2, d21, d02, d10], -1) / (2 * root[..., 0:1]),
            torch.stack([d21, root[..., 1] ** 2, s01, s02], -1) / (2 * root[..., 1:2]),
            torch.stack([d02, s01, root[..., 2] ** 2, s12], -1) / (2 * root[..., 2:3]),
            torch.stack([d10, s02, s12, root[..., 3] ** 2], -1) / (2 * root[..., 3:4]),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4), each equal to q on its own branch
    best = diag.argmax(-1)  # (...)
    onehot = F.one_hot(best, 4).to(m.dtype)
    q = (cands * onehot[..., None]).sum(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Axis-angle (angle in [0, π]) of a quaternion ``(w, x, y, z)``.

    Shape:
        quaternion ``(..., 4)`` -> ``(..., 3)``.
    """
    check_shape(quaternion, "... 4", name="quaternion")
    check_floating(quaternion, name="quaternion")
    q = F.normalize(quaternion, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., 0], q[..., 1:]
    n_sq = (xyz * xyz).sum(-1)
    small = n_sq < _SMALL_SQ
    n = torch.where(small, torch.ones_like(n_sq), n_sq).sqrt()
    # angle / sin(angle / 2) = 2 * atan2(n, w) / n; series 2/w * (1 - n²/(3 w²)) near n = 0
    w_safe = torch.where(small, w, torch.ones_like(w))
    factor = torch.where(small, 2 / w_safe * (1 - n_sq / (3 * w_safe**2)), 2 * torch.atan2(n, w) / n)
    return xyz * factor[..., None]


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Axis-angle (angle in [0, π]) of a rotation matrix, stable near 0 and π.

    Shape:
        matrix ``(..., 3, 3)`` -> ``(..., 3)``.
    """
    check_shape(matrix, "... 3 3", name="matrix")
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))
