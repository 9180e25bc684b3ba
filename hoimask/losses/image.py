"""2D losses (MaskHOI L_2D): segmentation cross-entropy and joint-heatmap MSE.

Heatmap targets are Gaussians rendered from the 2D joints. Pixel coordinates
are continuous (docs/conventions.md): pixel ``(i, j)`` covers ``[j, j+1) x
[i, i+1)``. A heatmap of size ``(h, w)`` covering an ``(H, W)`` image has its
pixel ``(i, j)`` centred at image point ``((j + 0.5) W / w, (i + 0.5) H / h)``,
so a joint ``(u, v)`` sits at heatmap index coordinates
``(u w / W - 0.5, v h / H - 0.5)``. ``sigma`` is given in heatmap pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import DTypeError, check_int, check_positive, check_shape, check_size
from hoimask.losses._reduce import masked_mean, zero_unknown

__all__ = ["segmentation_loss", "render_gaussian_heatmaps", "heatmap_loss", "heatmap_kl_divergence", "SegmentationLoss",
           "HeatmapLoss"]


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
    """Pixel-wise cross-entropy between logits and integer labels.

    Logits at another resolution than the labels are bilinearly resized first.

    Args:
        logits: ``(B, C, h, w)`` unnormalised class scores.
        labels: ``(B, H, W)`` int64 in ``[0, C)`` (0 background, 1 hand, 2 object),
            or ``ignore_index``.
        ignore_index: label value that does not count.

    Returns:
        Scalar mean cross-entropy.

    Shape:
        logits ``(B, C, h, w)``, labels ``(B, H, W)`` -> ``()``.
    """
    dims = check_shape(logits, "B C h w", name="logits")
    check_shape(labels, "B H W", name="labels", dims=dims)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise DTypeError(f"segmentation_loss(): argument 'labels' expected an integer tensor, got {labels.dtype}")
    check_int(ignore_index, name="ignore_index")
    if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_index)


def render_gaussian_heatmaps(
    joints_2d: torch.Tensor,
    size: tuple[int, int],
    image_size: tuple[int, int],
    *,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Render one unnormalised Gaussian (peak 1) per joint.

    Args:
        joints_2d: ``(B, J, 2)`` pixel coordinates ``(u, v)`` in the image.
        size: ``(h, w)`` of the heatmaps.
        image_size: ``(H, W)`` of the image the joints refer to.
        sigma: standard deviation in heatmap pixels, > 0.

    Returns:
        ``(B, J, h, w)`` heatmaps in the dtype/device of ``joints_2d``; joints far
        outside the image give (numerically) empty maps.

    Shape:
        ``(B, J, 2)`` -> ``(B, J, h, w)``.
    """
    check_shape(joints_2d, "B J 2", name="joints_2d")
    check_positive(sigma, name="sigma")
    h, w = check_size(size, name="size")
    H, W = check_size(image_size, name="image_size")
    x = joints_2d[..., 0] * (w / W) - 0.5  # (B, J) heatmap index coordinates
    y = joints_2d[..., 1] * (h / H) - 0.5
    xs = torch.arange(w, dtype=joints_2d.dtype, device=joints_2d.device)
    ys = torch.arange(h, dtype=joints_2d.dtype, device=joints_2d.device)
    gx = torch.exp(-((xs - x[..., None]) ** 2) / (2 * sigma**2))  # (B, J, w)
    gy = torch.exp(-((ys - y[..., None]) ** 2) / (2 * sigma**2))  # (B, J, h)
    return gy[..., :, None] * gx[..., None, :]  # (B, J, h, w)


def heatmap_loss(
    pred: torch.Tensor,
    joints_2d: torch.Tensor,
    image_size: tuple[int, int],
    *,
    sigma: float = 1.5,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between predicted heatmaps and Gaussians rendered at the joints.

    Args:
        pred: ``(B, J, h, w)`` predicted heatmaps.
        joints_2d: ``(B, J, 2)`` pixel coordinates in the image.
        image_size: ``(H, W)`` of the image.
        sigma: Gaussian width in heatmap pixels.
        visible: optional ``(B, J)`` bool; joints marked False do not count,
            nor do joints whose coordinates are not finite (unannotated).

    Returns:
        Scalar mean squared error over the counted maps (0 when none counts).

    Shape:
        pred ``(B, J, h, w)``, joints ``(B, J, 2)`` -> ``()``.
    """
    dims = check_shape(pred, "B J h w", name="pred")
    check_shape(joints_2d, "B J 2", name="joints_2d", dims=dims)
    check_size(image_size, name="image_size")
    known, joints_2d = _known_joints(joints_2d)
    target = render_gaussian_heatmaps(joints_2d.to(pred.dtype), pred.shape[-2:], image_size, sigma=sigma)
    err = (pred - target).pow(2).mean(dim=(-2, -1))  # (B, J)
    return _mean_over(err, known, visible, dims)


def heatmap_kl_divergence(
    logits: torch.Tensor,
    joints_2d: torch.Tensor,
    image_size: tuple[int, int],
    *,
    sigma: float = 1.0,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL divergence from a normalised Gaussian at the joint to each joint's spatial softmax.

    The form that trains soft-argmax (integral) keypoint heads: the target is a
    probability map and the loss is the cross-entropy minus the target's own
    entropy, so a perfect prediction scores 0, and its gradient does not vanish
    on a flat prediction (MSE to unnormalised Gaussians, :func:`heatmap_loss`, nearly does).

    Args:
        logits: ``(B, J, h, w)`` heatmap scores.
        joints_2d: ``(B, J, 2)`` pixel coordinates in the image.
        image_size: ``(H, W)`` of the image.
        sigma: Gaussian width in heatmap pixels, > 0.
        visible: optional ``(B, J)`` bool; joints marked False (and joints whose
            Gaussian falls outside the map) do not count.

    Returns:
        Scalar mean divergence (nats) over the counted joints (0 when none counts).

    Shape:
        logits ``(B, J, h, w)``, joints ``(B, J, 2)`` -> ``()``.

    Example:
        >>> logits = torch.zeros(1, 1, 8, 8)
        >>> target = render_gaussian_heatmaps(torch.tensor([[[16.0, 16.0]]]), (8, 8), (32, 32)).log()
        >>> float(heatmap_kl_divergence(logits, torch.tensor([[[16.0, 16.0]]]), (32, 32))) > 0
        True
        >>> abs(float(heatmap_kl_divergence(target, torch.tensor([[[16.0, 16.0]]]), (32, 32), sigma=1.5))) < 1e-5
        True
    """
    dims = check_shape(logits, "B J h w", name="logits")
    check_shape(joints_2d, "B J 2", name="joints_2d", dims=dims)
    check_size(image_size, name="image_size")
    known, joints_2d = _known_joints(joints_2d)
    target = render_gaussian_heatmaps(joints_2d.to(logits.dtype), logits.shape[-2:], image_size, sigma=sigma)
    mass = target.flatten(2).sum(dim=-1)  # (B, J)
    target = target.flatten(2) / mass.clamp_min(1e-8)[..., None]
    ce = (target * (target.clamp_min(1e-30).log() - logits.flatten(2).log_softmax(dim=-1))).sum(dim=-1)  # (B, J)
    return _mean_over(ce, (mass > 1e-3) & known, visible, dims)


def _known_joints(joints_2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, J)`` finite-joint mask and the joints with the others set to 0.

    Unannotated joints (NaN, docs/conventions.md) must not reach a loss's
    arithmetic at all: masking a NaN term out afterwards still sends NaN
    gradients back (0 × NaN), so they are replaced before the targets are made.
    """
    known = torch.isfinite(joints_2d).all(dim=-1)
    return known, zero_unknown(joints_2d, known)


def _mean_over(err: torch.Tensor, use: torch.Tensor, visible: torch.Tensor | None, dims: dict) -> torch.Tensor:
    """Mean of ``err (B, J)`` over the joints in ``use`` and ``visible`` (0 when none counts)."""
    if visible is not None:
        check_shape(visible, "B J", name="visible", dims=dims)
        use = use & visible.bool()
    return masked_mean(err, use)


class SegmentationLoss(nn.Module):
    """Module form of :func:`segmentation_loss`.

    Shape:
        logits ``(B, C, h, w)``, labels ``(B, H, W)`` -> ``()``.
    """

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = check_int(ignore_index, name="ignore_index")

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """See :func:`segmentation_loss`."""
        return segmentation_loss(logits, labels, ignore_index=self.ignore_index)


class HeatmapLoss(nn.Module):
    """Module form of :func:`heatmap_loss` holding ``sigma``.

    Shape:
        pred ``(B, J, h, w)``, joints ``(B, J, 2)`` -> ``()``.
    """

    def __init__(self, sigma: float = 1.5) -> None:
        super().__init__()
        self.sigma = check_positive(sigma, name="sigma")

    def forward(
        self,
        pred: torch.Tensor,
        joints_2d: torch.Tensor,
        image_size: tuple[int, int],
        visible: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """See :func:`heatmap_loss`."""
        return heatmap_loss(pred, joints_2d, image_size, sigma=self.sigma, visible=visible)
