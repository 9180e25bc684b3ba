"""Skeleton-guided hand masking (MaskHOI §III-B, Fig. 4).

The hand's budget of masked patches is spent following the kinematic tree
instead of uniformly at random. Each sample draws one pattern:

* ``"finger"`` — one whole finger: the bones met by a DFS from a random
  finger's MCP (MCP -> PIP -> DIP -> tip);
* ``"fingertips"`` — all five distal phalanges (DIP -> tip), the deepest BFS level;
* ``"level"`` — one random BFS depth level: the five bones ending at depth
  1 (palm, wrist -> MCP), 2, 3 or 4;
* ``"region"`` — a random contiguous hand region: the hand patches nearest to a
  random hand patch.

Bones are rasterised with :func:`hoimask.skeleton.rasterize_segments`. Hand
patches on the chosen bones are masked first (in random order); if the budget
is larger than the structure, the rest of the budget goes to random hand
patches; if it is smaller, only patches of the structure are masked.

Samples without finite joints (frames without a hand annotation give NaN
``joints_2d``) cannot be guided: the maskers mask their hand patches at random
under the same budgets and flag them in ``MaskOutput.fallback``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_choice,
    check_floating,
    check_in_range,
    check_shape,
)
from hoimask.masking._common import HAND, blob_scores, check_grid, uniform
from hoimask.skeleton.joints import FINGER_CHAINS, FINGERS, JOINT_DEPTH, PARENTS
from hoimask.skeleton.raster import _rasterize
from hoimask.skeleton.tree import dfs

__all__ = [
    "PATTERNS",
    "DEFAULT_PATTERN_PROBS",
    "check_pattern_probs",
    "sample_skeleton_patterns",
    "skeleton_targets",
    "skeleton_hand_scores",
    "check_joints_2d",
]

#: Pattern names, in the order of the integer pattern ids.
PATTERNS: tuple[str, ...] = ("finger", "fingertips", "level", "region")
FINGER, FINGERTIPS, LEVEL, REGION = range(4)

#: Default probabilities of the patterns (the paper gives none).
DEFAULT_PATTERN_PROBS: dict[str, float] = {"finger": 0.3, "fingertips": 0.3, "level": 0.1, "region": 0.3}

_SEGMENTS_PER_PATTERN = 5


def _segment_table() -> torch.Tensor:
    """``(10, 5, 2)`` (parent, child) joint pairs: rows 0-4 fingers, 5-8 depth levels 1-4, 9 unused."""
    rows = []
    for finger in FINGERS:
        chain = dfs(PARENTS, root=FINGER_CHAINS[finger][0])  # MCP, PIP, DIP, tip
        pairs = [(PARENTS[c], c) for c in chain[1:]]  # the finger's three bones
        rows.append(pairs + [pairs[-1]] * (_SEGMENTS_PER_PATTERN - len(pairs)))
    for depth in range(1, 5):
        rows.append([(PARENTS[c], c) for c, d in enumerate(JOINT_DEPTH) if d == depth])
    rows.append(rows[0])  # region pattern: no bones; masked out by the caller
    return torch.tensor(rows, dtype=torch.int64)


_TABLE = _segment_table()


def check_pattern_probs(pattern_probs: Mapping[str, float] | None) -> torch.Tensor:
    """Validate pattern probabilities and return them as a float64 tensor in :data:`PATTERNS` order.

    Args:
        pattern_probs: mapping from pattern name to a non-negative weight; missing
            patterns get 0; weights are normalised to sum to 1. ``None`` uses
            :data:`DEFAULT_PATTERN_PROBS`.

    Returns:
        ``(4,)`` probabilities.
    """
    probs = DEFAULT_PATTERN_PROBS if pattern_probs is None else pattern_probs
    if not isinstance(probs, Mapping):
        raise DTypeError(f"argument 'pattern_probs': expected a mapping name -> weight, got {type(probs).__name__}")
    for key in probs:
        check_choice(key, PATTERNS, name="pattern_probs", fn="check_pattern_probs")
    weights = [
        check_in_range(probs.get(p, 0.0), name=f"pattern_probs[{p!r}]", low=0.0, fn="check_pattern_probs")
        for p in PATTERNS
    ]
    total = sum(weights)
    if total <= 0:
        raise ValueRangeError(f"argument 'pattern_probs': weights must have a positive sum, got {dict(probs)}")
    return torch.tensor([w / total for w in weights], dtype=torch.float64)


def check_joints_2d(joints_2d: torch.Tensor | None, batch_size: int, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``joints_2d`` must be a floating ``(B, 21, 2)`` tensor (pixels, canonical order).

    Rows holding a NaN or an infinity are samples without a usable hand
    annotation (real datasets give NaN joints for such frames): they are not
    an error, the masker falls back for them (see the masker's docs).

    Returns:
        ``(joints_2d, usable)``: the joints, and ``(B,)`` bool, ``True`` where
        every coordinate of the sample is finite.
    """
    if joints_2d is None:
        raise ValueRangeError(
            f"{owner}(): argument 'joints_2d' is required: (B, 21, 2) pixel coordinates (x, y) "
            "in the canonical joint order, got None"
        )
    check_shape(joints_2d, "B 21 2", name="joints_2d", dims={"B": batch_size}, fn=owner)
    check_floating(joints_2d, name="joints_2d", fn=owner)
    usable = torch.isfinite(joints_2d).flatten(1).all(dim=1)  # (B,)
    return joints_2d, usable


def sample_skeleton_patterns(
    batch_size: int,
    probs: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a pattern and its index for every sample.

    Args:
        batch_size: ``B``.
        probs: ``(4,)`` probabilities over :data:`PATTERNS` (see :func:`check_pattern_probs`).
        device: device of the outputs.
        generator: source of randomness; ``None`` uses torch's default generator.

    Returns:
        ``pattern`` ``(B,)`` int64 ids into :data:`PATTERNS` and ``index`` ``(B,)``
        int64: the finger (0 thumb .. 4 little) for ``"finger"``, the depth (1..4)
        for ``"level"`` (4 for ``"fingertips"``), 0 for ``"region"``.

    Shape:
        probs ``(4,)`` -> pattern ``(B,)``, index ``(B,)``.
    """
    check_shape(probs, f"{len(PATTERNS)}", name="probs")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    u = uniform((batch_size, 2), generator, dev).double()  # (B, 2)
    cdf = probs.to(dev).cumsum(0)  # (4,)
    pattern = torch.searchsorted(cdf, u[:, 0].contiguous() * cdf[-1], right=True).clamp_max(len(PATTERNS) - 1)
    finger = (u[:, 1] * 5).long().clamp_max(4)
    depth = 1 + (u[:, 1] * 4).long().clamp_max(3)
    index = torch.where(pattern == FINGER, finger, torch.where(pattern == LEVEL, depth, 0))
    index = torch.where(pattern == FINGERTIPS, torch.full_like(index, 4), index)
    return pattern, index


def skeleton_targets(
    joints_2d: torch.Tensor,
    pattern: torch.Tensor,
    index: torch.Tensor,
    grid_size: Sequence[int],
    patch_size: Sequence[int],
    *,
    thickness: float,
) -> torch.Tensor:
    """Patches covered by each sample's chosen structure (finger, fingertips or level bones).

    Args:
        joints_2d: ``(B, 21, 2)`` pixels, canonical order, finite.
        pattern: ``(B,)`` pattern ids (:data:`PATTERNS`).
        index: ``(B,)`` finger or depth (see :func:`sample_skeleton_patterns`).
        grid_size: ``(gh, gw)``.
        patch_size: ``(ph, pw)`` pixels.
        thickness: brush side in pixels.

    Returns:
        ``(B, N)`` bool; all ``False`` for the ``"region"`` pattern.

    Shape:
        joints_2d ``(B, 21, 2)``, pattern, index ``(B,)`` -> ``(B, N)``.
    """
    dims = check_shape(joints_2d, "B 21 2", name="joints_2d")
    check_shape(pattern, "B", name="pattern", dims=dims)
    check_shape(index, "B", name="index", dims=dims)
    table = _TABLE.to(joints_2d.device)
    row = torch.where(pattern == FINGER, index, 4 + index)  # fingers 0-4, levels 5-8
    row = torch.where(pattern == REGION, torch.full_like(row, 9), row)
    pairs = table[row]  # (B, 5, 2)
    starts = joints_2d.gather(1, pairs[..., 0:1].expand(-1, -1, 2))  # (B, 5, 2)
    ends = joints_2d.gather(1, pairs[..., 1:2].expand(-1, -1, 2))  # (B, 5, 2)
    grid = (int(grid_size[0]), int(grid_size[1]))
    patch = (int(patch_size[0]), int(patch_size[1]))
    covered = _rasterize(starts, ends, grid, patch, thickness).any(dim=1)  # (B, N)
    return covered & (pattern != REGION).unsqueeze(-1)


def skeleton_hand_scores(
    joints_2d: torch.Tensor,
    labels: torch.Tensor,
    pattern: torch.Tensor,
    index: torch.Tensor,
    grid_size: Sequence[int],
    patch_size: Sequence[int],
    *,
    thickness: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores in ``[0, 2)`` that order hand patches for masking (higher = masked first).

    Structure patterns: ``1 + u`` on the chosen bones, ``u`` elsewhere (``u ~ U[0, 1)``).
    Region pattern: decreasing with the distance to a random hand patch, so the
    masked hand patches form a blob around it.

    Args:
        joints_2d: ``(B, 21, 2)`` pixels.
        labels: ``(B, N)`` patch labels (0 background, 1 hand, 2 object).
        pattern: ``(B,)`` pattern ids from :func:`sample_skeleton_patterns`.
        index: ``(B,)`` finger or depth indices from :func:`sample_skeleton_patterns`.
        grid_size: ``(gh, gw)``.
        patch_size: ``(ph, pw)`` pixels.
        thickness: brush side in pixels.
        generator: source of randomness; ``None`` uses torch's default generator.
        noise: optional ``(B, N)`` ``U[0, 1)`` noise to use instead of drawing it.

    Returns:
        ``(B, N)`` float32 scores (only hand entries matter).

    Shape:
        joints_2d ``(B, 21, 2)``, labels ``(B, N)``, pattern, index ``(B,)`` -> ``(B, N)``.
    """
    gh, gw = check_grid(grid_size)
    dims = check_shape(labels, f"B {gh * gw}", name="labels")
    check_shape(joints_2d, "B 21 2", name="joints_2d", dims=dims)
    B, N = dims["B"], gh * gw
    u = uniform((B, N), generator, labels.device) if noise is None else noise  # (B, N)
    on_bones = skeleton_targets(joints_2d.to(torch.float32), pattern, index, (gh, gw), patch_size,
                                thickness=thickness)  # (B, N)
    structure = u + on_bones.to(u.dtype)
    # Region pattern: a blob around the hand patch with the largest noise (any patch if there is no hand).
    region = blob_scores(u, labels == HAND, (gh, gw))  # (B, N) in [0, 2)
    return torch.where((pattern == REGION).unsqueeze(-1), region, structure)
