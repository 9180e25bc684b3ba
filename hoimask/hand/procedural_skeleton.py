"""Rest skeleton, shape model, joint axes and limits of the licence-free procedural hand.

The hand is a right hand laid out in MANO's frame: wrist at the origin, fingers
along ``-x``, palm facing ``-y``, thumb on the ``+z`` side. Lengths in metres
(wrist -> middle fingertip 0.184 m at ``shape = 0``).

Shape coefficients (``β``, 10, all act through ``exp`` so any real value is valid):

=====  ==========================================  ======================
index  effect                                      factor
=====  ==========================================  ======================
0      overall size                                ``exp(0.08 β0)``
1      finger length (all fingers)                 ``exp(0.05 β1)``
2      thickness (all radii)                       ``exp(0.08 β2)``
3      palm width (z)                              ``exp(0.05 β3)``
4      palm length (x)                             ``exp(0.05 β4)``
5..9   length of thumb, index, middle, ring, little ``exp(0.04 β)``
=====  ==========================================  ======================

Local joint rotations are written in each finger's anatomical axes: *flex*
(curl towards the palm, positive = closing), *spread* (positive = away from the
middle finger; for the thumb, towards the palm side) and *twist* (about the
bone). These three unit axes are orthonormal, so a MANO-style axis-angle
``ω`` and the angles ``(flex, spread, twist) = axes @ ω`` convert both ways.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Canonical finger order used by every table here.
FINGER_ORDER = ("thumb", "index", "middle", "ring", "little")
#: MANO joint indices (MANO_JOINT_NAMES) of each finger's three kinematic joints.
MANO_CHAINS: tuple[tuple[int, int, int], ...] = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))

_BASE = ((-0.018, -0.012, 0.020), (-0.086, 0.0, 0.021), (-0.089, 0.0, 0.002), (-0.085, 0.0, -0.015),
         (-0.076, -0.002, -0.030))  # fmt: skip
_DIRECTION = ((-0.62, -0.38, 0.69), (-1.0, 0.0, 0.07), (-1.0, 0.0, 0.0), (-1.0, 0.0, -0.08), (-1.0, 0.0, -0.16))
_FLEX_TARGET = ((0.0, -0.5, -1.0), (0.0, -1.0, 0.0), (0.0, -1.0, 0.0), (0.0, -1.0, 0.0), (0.0, -1.0, 0.0))
_SPREAD_SIGN = (1.0, -1.0, -1.0, 1.0, 1.0)
_LENGTH = ((0.040, 0.032, 0.027), (0.041, 0.025, 0.021), (0.045, 0.028, 0.022), (0.042, 0.027, 0.022),
           (0.033, 0.020, 0.020))  # fmt: skip
_RADIUS = ((0.0125, 0.0105, 0.0092), (0.0095, 0.0085, 0.0077), (0.0098, 0.0088, 0.0079),
           (0.0092, 0.0083, 0.0075), (0.0082, 0.0074, 0.0068))  # fmt: skip
# Palm: metacarpal capsules (index..little), fillers between neighbours, thenar pad.
_METACARPAL_START = ((-0.008, -0.001, 0.010), (-0.006, -0.001, 0.002), (-0.008, -0.001, -0.007),
                     (-0.012, -0.002, -0.014))  # fmt: skip
_METACARPAL_RADIUS = (0.0125, 0.0125, 0.0125, 0.0115)
_THENAR = ((-0.006, -0.004, 0.012), (-0.040, -0.006, 0.022), 0.013)

#: Joint limits in (flex, spread, twist) radians per joint kind: MCP/PIP/DIP of
#: the four fingers, CMC/MCP/IP of the thumb. Rows: kind; columns: (low, high) x 3.
_LIMITS = {
    "finger": (((-0.35, 1.6), (-0.35, 0.35), (-0.15, 0.15)), ((0.0, 1.9), (-0.05, 0.05), (-0.05, 0.05)),
               ((-0.1, 1.4), (-0.05, 0.05), (-0.05, 0.05))),
    "thumb": (((-0.5, 0.9), (-0.6, 0.6), (-0.4, 0.4)), ((-0.2, 1.0), (-0.1, 0.1), (-0.1, 0.1)),
              ((-0.3, 1.4), (-0.05, 0.05), (-0.05, 0.05))),
}  # fmt: skip
#: Flexion of a full grasp (``amount = 1``) per joint of a finger / of the thumb.
_GRASP_FLEX = {"finger": (1.3, 1.6, 1.1), "thumb": (0.7, 0.6, 0.9)}


def _unit(v: tuple[float, ...]) -> list[float]:
    n = math.sqrt(sum(c * c for c in v))
    return [c / n for c in v]


def rest_tables() -> dict[str, Tensor]:
    """Float64 tables of the rest hand (``shape = 0``), the ingredients of :func:`rest_skeleton`.

    Returns:
        Dict: ``base (5,3)``, ``direction (5,3)`` unit, ``length (5,3)``,
        ``radius (5,3)``, ``palm_a (8,3)``, ``palm_b (8,3)`` (the palm
        capsules: metacarpals index..little, three fillers, thenar), ``palm_radius (8,)``, ``axes (15,3,3)``
        (rows flex, spread, twist of every local MANO joint 1..15), ``limits
        (15,3,2)``, ``grasp_flex (15,)``.

    Shape:
        see Returns.
    """
    f64 = torch.float64
    direction = torch.tensor([_unit(d) for d in _DIRECTION], dtype=f64)
    axes = torch.zeros(15, 3, 3, dtype=f64)
    limits = torch.zeros(15, 3, 2, dtype=f64)
    grasp_flex = torch.zeros(15, dtype=f64)
    for f, chain in enumerate(MANO_CHAINS):
        d = direction[f]
        target = torch.tensor(_FLEX_TARGET[f], dtype=f64)
        n = target - (target @ d) * d
        n = n / n.norm()
        flex = torch.linalg.cross(d, n)  # rotating d about d x n moves it towards n
        kind = "thumb" if f == 0 else "finger"
        for k, j in enumerate(chain):
            axes[j - 1] = torch.stack([flex, _SPREAD_SIGN[f] * n, d])
            limits[j - 1] = torch.tensor(_LIMITS[kind][k], dtype=f64)
            grasp_flex[j - 1] = _GRASP_FLEX[kind][k]
    ends = [torch.tensor(_BASE[f], dtype=f64) for f in range(1, 5)]
    starts = [torch.tensor(s, dtype=f64) for s in _METACARPAL_START]
    palm_a = starts + [(starts[i] + starts[i + 1]) / 2 for i in range(3)] + [torch.tensor(_THENAR[0], dtype=f64)]
    palm_b = ends + [(ends[i] + ends[i + 1]) / 2 for i in range(3)] + [torch.tensor(_THENAR[1], dtype=f64)]
    rad = list(_METACARPAL_RADIUS) + [0.0125, 0.0125, 0.012] + [_THENAR[2]]
    return {
        "base": torch.tensor(_BASE, dtype=f64),
        "direction": direction,
        "length": torch.tensor(_LENGTH, dtype=f64),
        "radius": torch.tensor(_RADIUS, dtype=f64),
        "palm_a": torch.stack(palm_a),
        "palm_b": torch.stack(palm_b),
        "palm_radius": torch.tensor(rad, dtype=f64),
        "axes": axes,
        "limits": limits,
        "grasp_flex": grasp_flex,
    }


def rest_skeleton(shape: Tensor, tables: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rest joints and primitive sizes for shape coefficients ``β`` (differentiable in ``β``).

    Args:
        shape: shape coefficients ``(B, 10)``.
        tables: :func:`rest_tables` already cast to ``shape``'s dtype/device.

    Returns:
        Dict: ``joints (B,16,3)`` MANO order, ``tips (B,5,3)`` (thumb..little),
        ``radius (B,5,3)`` per phalanx, ``palm_a``, ``palm_b`` ``(B,8,3)``,
        ``palm_radius (B,8)``.

    Shape:
        ``(B, 10)`` -> see Returns.
    """
    size = torch.exp(0.08 * shape[:, 0])[:, None, None]  # (B, 1, 1)
    finger_len = torch.exp(0.05 * shape[:, 1])[:, None]  # (B, 1)
    thick = torch.exp(0.08 * shape[:, 2])[:, None, None]
    palm_scale = torch.stack(
        [torch.exp(0.05 * shape[:, 4]), torch.ones_like(shape[:, 0]), torch.exp(0.05 * shape[:, 3])], dim=-1
    )[:, None, :]  # (B, 1, 3): x length, y, z width

    def place(points: Tensor) -> Tensor:  # (P, 3) -> (B, P, 3)
        return size * points * palm_scale

    base = place(tables["base"])  # (B, 5, 3)
    per_finger = torch.exp(0.04 * shape[:, 5:10]) * finger_len  # (B, 5)
    lengths = size * (tables["length"] * per_finger[..., None])  # (B, 5, 3)
    offsets = lengths.cumsum(-1)[..., None] * tables["direction"][:, None, :]  # (B, 5, 3 phalanges, 3 xyz)
    # in shape's dtype: under CUDA autocast exp() runs in float32 and would promote the chain past the joints' dtype
    chain = torch.cat([base[:, :, None], base[:, :, None] + offsets], dim=2).to(shape.dtype)  # (B, 5, 4, 3)
    batch = shape.shape[0]
    joints = shape.new_zeros(batch, 16, 3)
    index = torch.tensor([j for c in MANO_CHAINS for j in c], device=shape.device)
    joints = joints.index_copy(1, index, chain[:, :, :3].reshape(batch, 15, 3))
    return {
        "joints": joints,
        "tips": chain[:, :, 3],
        "radius": thick * size * tables["radius"],
        "palm_a": place(tables["palm_a"]),
        "palm_b": place(tables["palm_b"]),  # metacarpals end exactly at the finger bases
        "palm_radius": (thick * size)[..., 0] * tables["palm_radius"],
    }
