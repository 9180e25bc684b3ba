"""2.5D keypoints (Iqbal et al., ECCV 2018): per-joint heatmaps + relative depths, lifted with ``K``.

Regressing a hand's global rotation from pooled tokens did not learn within a
CPU budget (docs/training.md); localising each joint in the image is a dense,
translation-equivariant task that does. :class:`Keypoint25DHead` turns the
encoder's token grid — upsampled and fused with a shallow convolutional stem of
the image, which restores the detail that 16-pixel patches lack (as DPT and
ViTPose fuse finer features) — into one heatmap and one relative-depth map per
joint at stride 4. :func:`soft_argmax_2d` reads pixel positions and the
expected depths; :func:`lift_keypoints` back-projects them with the root depth
and ``K`` into camera-frame joints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hoimask._checks import ShapeError, check_int, check_positive, check_shape, check_size
from hoimask.geometry.camera import unproject

__all__ = ["Keypoint25DHead", "lift_keypoints", "soft_argmax_2d"]


def soft_argmax_2d(logits: torch.Tensor, image_size: tuple[int, int],
                   values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expected pixel position under a spatial softmax, and the expected ``values`` there.

    Args:
        logits: ``(B, J, h, w)`` heatmap scores.
        image_size: ``(H, W)`` of the image the heatmaps cover (pixel ``(i, j)``
            of the map covers image pixels ``[jW/w, (j+1)W/w) × [iH/h, (i+1)H/h)``).
        values: optional ``(B, J, h, w)`` maps (e.g. relative depths) to average
            with the same weights.

    Returns:
        ``uv (B, J, 2)`` in image pixels (continuous, centre convention) and the
        averaged values ``(B, J)`` (or None).

    Shape:
        ``(B, J, h, w) -> (B, J, 2), (B, J)``.

    Example:
        >>> logits = torch.full((1, 1, 4, 4), -1e4); logits[0, 0, 1, 2] = 0.0
        >>> soft_argmax_2d(logits, (16, 16))[0]
        tensor([[[10.,  6.]]])
    """
    dims = check_shape(logits, "B J h w", name="logits")
    if values is not None:
        check_shape(values, "B J h w", name="values", dims=dims)
    image_size = check_size(image_size, name="image_size")
    probs = logits.flatten(2).softmax(dim=-1).view_as(logits)  # (B, J, h, w)
    expected = None if values is None else (probs * values).flatten(2).sum(dim=-1)
    return expected_position(probs, image_size), expected


def expected_position(probs: torch.Tensor, size: tuple[float, float]) -> torch.Tensor:
    """``(B, K, 2)`` mean ``(x, y)`` of probability maps ``(B, K, h, w)`` spanning ``size = (H, W)``.

    Cell ``(i, j)`` sits at its centre ``((j + 1/2) W / w, (i + 1/2) H / h)``.
    """
    h, w = probs.shape[-2:]
    H, W = size
    xs = (torch.arange(w, device=probs.device, dtype=probs.dtype) + 0.5) * (W / w)
    ys = (torch.arange(h, device=probs.device, dtype=probs.dtype) + 0.5) * (H / h)
    return torch.stack([(probs.sum(dim=-2) * xs).sum(dim=-1), (probs.sum(dim=-1) * ys).sum(dim=-1)], dim=-1)


def lift_keypoints(uv: torch.Tensor, relative_depth: torch.Tensor, root_depth: torch.Tensor,
                   K: torch.Tensor) -> torch.Tensor:
    """Camera-frame points from pixels and depths relative to a root: ``unproject(uv, z_root + d, K)``.

    Args:
        uv: ``(B, J, 2)`` pixels.
        relative_depth: ``(B, J)`` depth of each joint minus the root depth, metres.
        root_depth: ``(B,)`` root depth (camera z), metres.
        K: ``(B, 3, 3)`` intrinsics.

    Returns:
        ``(B, J, 3)`` camera-frame points, metres.

    Shape:
        ``(B, J, 2), (B, J), (B,), (B, 3, 3) -> (B, J, 3)``.
    """
    dims = check_shape(uv, "B J 2", name="uv")
    check_shape(relative_depth, "B J", name="relative_depth", dims=dims)
    check_shape(root_depth, "B", name="root_depth", dims=dims)
    check_shape(K, "B 3 3", name="K", dims=dims)
    return unproject(uv, root_depth[:, None] + relative_depth, K.to(uv.dtype))


def _conv(i: int, o: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(o),
                         nn.ReLU(inplace=True))


class Keypoint25DHead(nn.Module):
    """Token grid + image -> per-joint heatmap logits and relative-depth maps at stride 4.

    The image goes through a shallow stem (two stride-2 convolutions to stride
    4, one more to stride 8); the ``(h, w)`` token grid is resized to stride 8
    and fused with the stride-8 stem features (1×1 reduction, 3×3
    convolution), upsampled to stride 4 and fused the same way with the
    stride-4 features, and a 1×1 convolution gives ``2 J`` maps: J heatmap
    logits and J relative depths. The relative depths are in units of
    ``depth_scale`` metres (0.1: decimetres, so the maps stay O(1)). The 1×1
    reductions before the 3×3 convolutions keep the head at about twice the
    cost of the ``tiny`` encoder (it was 3× with full 3×3 fusions, for the same
    accuracy; docs/training.md).

    Args:
        dim: token size D.
        num_joints: J (21 hand joints; :class:`~hoimask.models.PoseRegressionModel`
            adds the object centre as a 22nd point).
        channels: width of the stride-4 stage (the stride-8 stage has twice as many).
        depth_scale: metres per unit of the depth maps.
        stem_depth: 3×3 convolutions per stage of the image stem (stride 2, 4
            and 8); 1 is the shallow stem described above.
        aux_maps: further per-pixel output maps at stride 4 (raw, for dense
            auxiliary targets such as a depth image or a hand mask); with
            ``aux_maps > 0`` :meth:`forward` returns them as a third output.

    Shape:
        tokens ``(B, h w, D)``, image ``(B, 3, H, W)`` (normalised; sides
        multiples of 8) -> heatmaps ``(B, J, H/4, W/4)``, depths ``(B, J, H/4, W/4)`` metres
        (+ ``(B, aux_maps, H/4, W/4)`` when ``aux_maps > 0``).

    Example:
        >>> head = Keypoint25DHead(32, channels=16)
        >>> maps, depth = head(torch.randn(2, 16, 32), (4, 4), torch.randn(2, 3, 64, 64))
        >>> tuple(maps.shape), tuple(depth.shape)
        ((2, 21, 16, 16), (2, 21, 16, 16))
    """

    def __init__(self, dim: int, *, num_joints: int = 21, channels: int = 64, depth_scale: float = 0.1,
                 aux_maps: int = 0, stem_depth: int = 1) -> None:
        super().__init__()
        check_int(dim, name="dim", low=1)
        check_int(num_joints, name="num_joints", low=1)
        check_int(channels, name="channels", low=2)
        self.aux_maps = check_int(aux_maps, name="aux_maps", low=0)
        self.dim, self.num_joints, self.depth_scale = dim, num_joints, check_positive(depth_scale, name="depth_scale")
        self.stem_depth = check_int(stem_depth, name="stem_depth", low=1)
        c, extra = channels, self.stem_depth - 1
        self.stem4 = nn.Sequential(_conv(3, c // 2, 2), *(_conv(c // 2, c // 2) for _ in range(extra)),
                                   _conv(c // 2, c, 2), _conv(c, c), *(_conv(c, c) for _ in range(extra)))
        self.stem8 = (_conv(c, 2 * c, 2) if not extra else
                      nn.Sequential(_conv(c, 2 * c, 2), *(_conv(2 * c, 2 * c) for _ in range(extra))))
        self.fuse8 = nn.Sequential(_conv(dim + 2 * c, 2 * c, kernel=1), _conv(2 * c, 2 * c))
        self.fuse4 = nn.Sequential(_conv(2 * c + c, c, kernel=1), _conv(c, c))
        self.out = nn.Conv2d(c, 2 * num_joints + self.aux_maps, 1)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, tokens: torch.Tensor, grid_size: tuple[int, int],
                image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Heatmap logits and relative depths (metres) of every joint (and the auxiliary maps, if any)."""
        h, w = check_size(grid_size, name="grid_size")
        dims = check_shape(tokens, f"B {h * w} {self.dim}", name="tokens")
        check_shape(image, "B 3 H W", name="image", dims=dims)
        if image.shape[-2] % 8 or image.shape[-1] % 8:
            raise ShapeError(
                f"Keypoint25DHead.forward(): argument 'image' expected sides that are multiples of 8, "
                f"got shape {tuple(image.shape)}"
            )
        f4 = self.stem4(image)  # (B, c, H/4, W/4)
        f8 = self.stem8(f4)  # (B, 2c, H/8, W/8)
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], self.dim, h, w)
        grid = F.interpolate(grid, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse8(torch.cat([grid, f8], dim=1))
        x = F.interpolate(x, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        x = self.out(self.fuse4(torch.cat([x, f4], dim=1)))  # (B, 2J, H/4, W/4)
        J = self.num_joints
        if self.aux_maps:
            return x[:, :J], x[:, J:2 * J] * self.depth_scale, x[:, 2 * J:]
        return x[:, :J], x[:, J:] * self.depth_scale
