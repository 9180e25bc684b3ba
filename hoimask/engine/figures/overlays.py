"""Pictures of data: images, segmentations, 2D hand skeletons and object boxes.

A *picture* here is a ``(H, W, 3)`` uint8 RGB tensor on the CPU, channels last
(``PIL.Image.fromarray(picture.numpy())`` shows it). Coordinates are pixels in
the library's convention: pixel ``(i, j)`` spans ``[j, j+1) x [i, i+1)``, so
:func:`enlarge` by ``f`` maps a point ``(u, v)`` to ``(f u, f v)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_dtype,
    check_int,
    check_shape,
)
from hoimask.engine.figures.scheme import (
    GROUND_TRUTH_COLOUR,
    HIDDEN_HAND_COLOUR,
    SEGMENTATION_COLOURS,
    Colour,
    check_colour,
)
from hoimask.skeleton import BONES, NUM_JOINTS

__all__ = ["picture_from_image", "colour_segmentation", "enlarge", "points_box", "draw_skeleton", "draw_box"]


def check_picture(picture: object, *, name: str, fn: str) -> dict[str, int]:
    """Check a ``(H, W, 3)`` uint8 picture; returns ``{"H": ..., "W": ...}``."""
    dims = check_shape(picture, "H W 3", name=name, fn=fn)
    check_dtype(picture, torch.uint8, name=name, fn=fn)
    return dims


def picture_from_image(image: torch.Tensor, *, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> torch.Tensor:
    """An image tensor as a picture: channels last, uint8.

    Args:
        image: RGB, channels first: uint8, or float in ``[0, 1]`` (clipped for
            display); a float image normalised as ``(x - mean) / std`` is
            un-normalised first when ``mean`` and ``std`` are given.
        mean: per-channel mean of a normalisation to undo (with ``std``).
        std: per-channel standard deviation of that normalisation (with ``mean``).

    Returns:
        uint8 picture(s) on the CPU.

    Shape:
        ``(3, H, W) -> (H, W, 3)``; ``(B, 3, H, W) -> (B, H, W, 3)``.

    Example:
        >>> picture_from_image(torch.ones(3, 2, 4)).shape
        torch.Size([2, 4, 3])
    """
    fn = "picture_from_image"
    check_shape(image, "... 3 H W", name="image", fn=fn)
    if image.dim() not in (3, 4):
        raise ShapeError(f"{fn}(): argument 'image' expected shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    if (mean is None) != (std is None):
        raise DTypeError(f"{fn}(): arguments 'mean' and 'std' must be given together")
    x = image.detach().cpu()
    if x.dtype != torch.uint8:
        if not x.is_floating_point():
            raise DTypeError(f"{fn}(): argument 'image' expected uint8 or a floating dtype, got {x.dtype}")
        x = x.float()
        if mean is not None:
            x = x * torch.tensor(std, dtype=x.dtype).view(3, 1, 1) + torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
        x = (x.nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    return x.movedim(-3, -1).contiguous()


def colour_segmentation(labels: torch.Tensor, *, hidden_hand: torch.Tensor | None = None) -> torch.Tensor:
    """A segmentation in the shared colours: background, hand, object.

    Args:
        labels: integer labels, 0 background, 1 hand, 2 object.
        hidden_hand: optional bool amodal hand mask; where it covers the
            object (the hand hidden behind it) the object is hatched with
            :data:`HIDDEN_HAND_COLOUR` stripes, where it covers background
            that colour fills the pixel.

    Returns:
        uint8 picture(s).

    Shape:
        ``labels (..., H, W)``, ``hidden_hand (..., H, W)`` -> ``(..., H, W, 3)``.

    Raises:
        ValueRangeError: a label outside {0, 1, 2}.

    Example:
        >>> colour_segmentation(torch.tensor([[0, 1, 2]]))[0].tolist()
        [[40, 40, 40], [230, 160, 120], [80, 140, 230]]
    """
    fn = "colour_segmentation"
    check_shape(labels, "... H W", name="labels", fn=fn)
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise DTypeError(f"{fn}(): argument 'labels' expected an integer dtype, got {labels.dtype}")
    lab = labels.detach().cpu().long()
    if lab.numel() and (lab.min() < 0 or lab.max() > 2):
        raise ValueRangeError(f"{fn}(): argument 'labels' expected values in {{0, 1, 2}}, got values in "
                              f"[{int(lab.min())}, {int(lab.max())}]")
    palette = torch.tensor(SEGMENTATION_COLOURS, dtype=torch.uint8)
    out = palette[lab]
    if hidden_hand is not None:
        check_shape(hidden_hand, "... H W", name="hidden_hand", fn=fn)
        if tuple(hidden_hand.shape) != tuple(lab.shape):
            raise ShapeError(f"{fn}(): argument 'hidden_hand' expected the shape of 'labels' {tuple(lab.shape)}, "
                             f"got {tuple(hidden_hand.shape)}")
        check_dtype(hidden_hand, torch.bool, name="hidden_hand", fn=fn)
        H, W = lab.shape[-2:]
        stripes = ((torch.arange(H).view(H, 1) + torch.arange(W).view(1, W)) // 3) % 2 == 0  # diagonal hatching
        hidden = hidden_hand.detach().cpu() & (lab != 1) & ((lab == 0) | stripes)
        out[hidden] = torch.tensor(HIDDEN_HAND_COLOUR, dtype=torch.uint8)
    return out


def enlarge(picture: torch.Tensor, factor: int) -> torch.Tensor:
    """Enlarge a picture by an integer factor, each pixel becoming a ``factor x factor`` block.

    Args:
        picture: uint8 picture.
        factor: >= 1.

    Returns:
        The enlarged picture.

    Shape:
        ``(H, W, 3) -> (factor H, factor W, 3)``.
    """
    check_picture(picture, name="picture", fn="enlarge")
    f = check_int(factor, name="factor", low=1, fn="enlarge")
    return picture.repeat_interleave(f, dim=0).repeat_interleave(f, dim=1) if f > 1 else picture


def points_box(points: torch.Tensor) -> torch.Tensor:
    """The axis-aligned box of 2D points, ignoring non-finite points.

    Args:
        points: ``(..., P, 2)`` pixel coordinates ``(u, v)``.

    Returns:
        ``(..., 4)`` boxes ``(u_min, v_min, u_max, v_max)``; NaN where no point is finite.

    Shape:
        ``(..., P, 2) -> (..., 4)``.

    Example:
        >>> points_box(torch.tensor([[1.0, 5.0], [3.0, 2.0], [float("nan"), 0.0]])).tolist()
        [1.0, 2.0, 3.0, 5.0]
    """
    check_shape(points, "... P 2", name="points", fn="points_box")
    ok = torch.isfinite(points).all(-1, keepdim=True)  # (..., P, 1)
    inf = torch.full_like(points, float("inf"))
    lo = torch.where(ok, points, inf).amin(-2)
    hi = torch.where(ok, points, -inf).amax(-2)
    box = torch.cat([lo, hi], -1)
    return torch.where(ok.any(-2), box, torch.full_like(box, float("nan")))


def _outline(colour: Colour) -> Colour:
    """A dark edge under a line of ``colour``, so it shows on light and dark images alike."""
    return tuple(int(c * 0.25) for c in colour)  # type: ignore[return-value]


def draw_skeleton(picture: torch.Tensor, joints_2d: torch.Tensor, *, colour: Colour = GROUND_TRUTH_COLOUR,
                  width: int = 2) -> torch.Tensor:
    """Draw a 21-joint hand skeleton (bones and joints) on a picture.

    Bones follow :data:`hoimask.skeleton.BONES` (canonical joint order: wrist,
    then thumb, index, middle, ring, little, MCP -> tip), with a dark edge so
    the skeleton shows on any image. Joints that are not finite (unannotated)
    and the bones touching them are left out.

    Args:
        picture: uint8 picture (not modified).
        joints_2d: pixel coordinates ``(u, v)`` of the picture, canonical order.
        colour: RGB of bones and joints (the shared :data:`GROUND_TRUTH_COLOUR`
            or :data:`PREDICTED_COLOUR`).
        width: bone width in pixels.

    Returns:
        A new picture.

    Shape:
        ``picture (H, W, 3)``, ``joints_2d (21, 2)`` -> ``(H, W, 3)``.

    Example:
        >>> from hoimask.engine.figures import PREDICTED_COLOUR
        >>> joints = torch.rand(21, 2) * 60 + 2
        >>> out = draw_skeleton(torch.zeros(64, 64, 3, dtype=torch.uint8), joints, colour=PREDICTED_COLOUR)
        >>> out.shape, bool((out == torch.tensor(PREDICTED_COLOUR, dtype=torch.uint8)).all(-1).any())
        (torch.Size([64, 64, 3]), True)
    """
    fn = "draw_skeleton"
    check_picture(picture, name="picture", fn=fn)
    check_shape(joints_2d, f"{NUM_JOINTS} 2", name="joints_2d", fn=fn)
    rgb = check_colour(colour, name="colour", fn=fn)
    w = check_int(width, name="width", low=1, fn=fn)
    uv = joints_2d.detach().cpu().double()
    finite = torch.isfinite(uv).all(-1).tolist()
    pts = [tuple(p) for p in uv.nan_to_num(0.0, posinf=0.0, neginf=0.0).tolist()]
    img = Image.fromarray(picture.numpy())
    draw = ImageDraw.Draw(img)
    bones = [(pts[a], pts[b]) for a, b in BONES if finite[a] and finite[b]]
    r = w + 1
    for edge, grow in ((_outline(rgb), 2), (rgb, 0)):
        for a, b in bones:
            draw.line([a, b], fill=edge, width=w + grow)
        for (x, y), ok in zip(pts, finite):
            if ok:
                draw.ellipse([x - r - grow / 2, y - r - grow / 2, x + r + grow / 2, y + r + grow / 2], fill=edge)
    return torch.from_numpy(np.asarray(img).copy())


def draw_box(picture: torch.Tensor, box: torch.Tensor, *, colour: Colour = GROUND_TRUTH_COLOUR,
             width: int = 2) -> torch.Tensor:
    """Draw an axis-aligned box (e.g. an object's :func:`points_box`) on a picture.

    A box with a non-finite coordinate is not drawn (the picture is returned unchanged).

    Args:
        picture: uint8 picture (not modified).
        box: ``(u_min, v_min, u_max, v_max)`` pixels.
        colour: RGB of the outline.
        width: line width in pixels.

    Returns:
        A new picture.

    Shape:
        ``picture (H, W, 3)``, ``box (4,)`` -> ``(H, W, 3)``.
    """
    fn = "draw_box"
    check_picture(picture, name="picture", fn=fn)
    check_shape(box, "4", name="box", fn=fn)
    rgb = check_colour(colour, name="colour", fn=fn)
    w = check_int(width, name="width", low=1, fn=fn)
    b = box.detach().cpu().double()
    if not torch.isfinite(b).all():
        return picture.clone()
    u0, v0, u1, v1 = b.tolist()
    img = Image.fromarray(picture.numpy())
    draw = ImageDraw.Draw(img)
    for edge, grow in ((_outline(rgb), 1), (rgb, 0)):
        draw.rectangle([min(u0, u1) - grow, min(v0, v1) - grow, max(u0, u1) + grow, max(v0, v1) + grow],
                       outline=edge, width=w + 2 * grow if grow else w)
    return torch.from_numpy(np.asarray(img).copy())
