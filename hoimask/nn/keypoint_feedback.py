"""HandMIM's fine-tuning head: a PyMAF-style keypoint feedback loop that regresses MANO (θ, β, t) from ViT tokens.

HandMIM §2.5 (``papers/handmim.txt``) fine-tunes its pre-trained ViT with "a
keypoint feedback loop after the backbone, similar to PyMAF, to predict MANO
parameters (θ, β, t) ... composed of three rectifier layers that extract local
features based on the current keypoint-image alignment status and feed them
back for rectification". :class:`KeypointFeedbackRegressor` is that loop:

1. **Pyramid.** The token grid ``(h, w)`` (stride ``P``) goes through one
   stage per iteration (PyMAF's deconvolution layers): a 4×4 stride-2
   transposed convolution while the map is coarser than ``max_upsample``
   times the grid, a 3×3 convolution after that, each with batch norm and
   ReLU. With the default ``max_upsample=4`` and 16-pixel patches the maps
   have strides 8, 4, 4 (PyMAF on a ResNet: 1/16, 1/8, 1/4 of the image).
2. **Initial estimate** from the tokens: 16 rotations (6D) and β from the
   layer-normed, mean-pooled tokens by a linear layer that starts at the
   identity rotations and β = 0; the wrist translation ``t`` camera-aware, as
   :class:`~hoimask.nn.SpatialTranslationHead`'s raw ``(a, b, c)`` turned
   into metres by :func:`~hoimask.geometry.translation_from_image` with ``K``.
3. **Rectifiers** (``iterations``, 3 in the paper): the current estimate
   goes through the hand layer; its 21 camera-frame joints are projected with
   ``K`` into iteration ``k``'s map and sampled bilinearly
   (:func:`~hoimask.geometry.pixel_aligned_features`, i.e. ``grid_sample``;
   joints behind the camera or outside the image read zeros); a per-point MLP
   reduces each joint's feature to ``point_features`` numbers (PyMAF: 5); the
   21 of them, concatenated with the current ``(6D, β, t_raw)``, go through an
   MLP that regresses a residual update of all three.

As in PyMAF, the estimate that is fed back is detached (the sampling positions
and the parameters the residual is added to): each rectifier learns to correct
the estimate it is given, and every estimate is supervised (intermediate
supervision, :class:`~hoimask.models.HandMIMPoseModel`). Where the paper is
silent the choices are PyMAF's, scaled down: no dropout (PyMAF: 0.5), the
update MLP's last layer starts at 1 % of its default scale and a zero bias
(PyMAF: Xavier with gain 0.01), so every rectifier starts as the identity.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_int,
    check_positive,
    check_shape,
    check_size,
)
from hoimask.geometry import (
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    pixel_aligned_features,
    project,
    rotation_6d_to_matrix,
    translation_from_image,
)
from hoimask.nn._mlp import relu_mlp
from hoimask.nn.heads import IDENTITY_6D, SpatialTranslationHead

__all__ = ["HandEstimate", "KeypointFeedbackRegressor", "feedback_map_scales"]


class HandEstimate(NamedTuple):
    """One estimate of the feedback loop: MANO parameters and the hand they pose, camera frame, metres."""

    rotation_6d: torch.Tensor  #: (B, 16, 6) raw 6D rotations (MANO order: global, then 15 joints)
    shape: torch.Tensor  #: (B, 10) β
    translation_raw: torch.Tensor  #: (B, 3) (a, b, c) of translation_from_image
    translation: torch.Tensor  #: (B, 3) the wrist in the camera frame, metres
    joints: torch.Tensor  #: (B, 21, 3) canonical order, camera frame, metres (joints[:, 0] == translation)
    vertices: torch.Tensor  #: (B, V, 3) camera frame, metres
    keypoints_2d: torch.Tensor  #: (B, 21, 2) the joints projected with K, pixels


def feedback_map_scales(iterations: int, max_upsample: int = 4) -> tuple[int, ...]:
    """Upsampling of each rectifier's feature map relative to the token grid: doubling up to ``max_upsample``.

    Args:
        iterations: rectifier steps (one map each).
        max_upsample: the largest factor, a power of two (1: every map at the token stride).

    Returns:
        ``iterations`` factors, e.g. ``(2, 4, 4)`` (strides 8, 4, 4 for 16-pixel patches).

    Example:
        >>> feedback_map_scales(3), feedback_map_scales(4, 2)
        ((2, 4, 4), (2, 2, 2, 2))
    """
    check_int(iterations, name="iterations", low=1, fn="feedback_map_scales")
    check_int(max_upsample, name="max_upsample", low=1, fn="feedback_map_scales")
    if max_upsample & (max_upsample - 1):
        raise ValueRangeError(f"feedback_map_scales(): argument 'max_upsample' expected a power of two, got {max_upsample}")
    return tuple(min(2 ** (i + 1), max_upsample) for i in range(iterations))


def _stage(in_channels: int, out_channels: int, upsample: bool, device, dtype) -> nn.Sequential:
    conv = (nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False, device=device,
                               dtype=dtype) if upsample else
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False, device=device, dtype=dtype))
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels, device=device, dtype=dtype), nn.ReLU(inplace=True))


class KeypointFeedbackRegressor(nn.Module):
    """Token grid -> MANO (16 × 6D, β) and the wrist translation, rectified ``iterations`` times by joint features.

    See the module docstring for the loop (HandMIM §2.5, PyMAF).

    Args:
        dim: token size D.
        hand_layer: ``ProceduralHand`` / ``MANOLayer`` (any module called as
            ``(pose (B, 16, 3) axis-angle, shape (B, 10), trans (B, 3))`` returning
            ``joints (B, 21, 3)`` and ``vertices (B, V, 3)``); it poses each estimate.
        iterations: rectifier steps (the paper: 3).
        channels: width of the feature maps (PyMAF: 256).
        max_upsample: the finest map's size over the token grid's, a power of
            two (see :func:`feedback_map_scales`).
        point_features: numbers each joint's sampled feature is reduced to (PyMAF: 5).
        hidden: width of the update MLPs and the initial translation head.
        reference_depth: metres; the initial wrist depth for a camera whose
            focal length equals the image side (:func:`~hoimask.geometry.translation_from_image`).

    Shape:
        tokens ``(B, h w, D)``, ``grid_size = (h, w)``, K ``(B, 3, 3)``, ``image_size = (H, W)``
        -> a list of ``iterations + 1`` :class:`HandEstimate` (the initial one first, the final one last).

    Example:
        >>> from hoimask.hand import ProceduralHand
        >>> head = KeypointFeedbackRegressor(32, ProceduralHand(), channels=16, hidden=32)
        >>> K = torch.tensor([[64.0, 0, 32], [0, 64.0, 32], [0, 0, 1]]).expand(2, 3, 3)
        >>> estimates = head(torch.randn(2, 16, 32), (4, 4), K, (64, 64))
        >>> len(estimates), tuple(estimates[-1].joints.shape), tuple(estimates[-1].keypoints_2d.shape)
        (4, (2, 21, 3), (2, 21, 2))
        >>> [tuple(m.shape[-2:]) for m in head.feature_maps(torch.randn(2, 16, 32), (4, 4))]
        [(8, 8), (16, 16), (16, 16)]
    """

    num_rotations = 16
    num_betas = 10
    num_joints = 21

    def __init__(
        self,
        dim: int,
        hand_layer: nn.Module,
        *,
        iterations: int = 3,
        channels: int = 64,
        max_upsample: int = 4,
        point_features: int = 5,
        hidden: int = 256,
        reference_depth: float = 0.5,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "KeypointFeedbackRegressor"
        self.dim = check_int(dim, name="dim", low=1, fn=fn)
        if not isinstance(hand_layer, nn.Module):
            raise DTypeError(f"{fn}(): argument 'hand_layer' expected a hand module (ProceduralHand, MANOLayer), "
                             f"got {type(hand_layer).__name__}")
        self.iterations = check_int(iterations, name="iterations", low=1, fn=fn)
        check_int(channels, name="channels", low=1, fn=fn)
        check_int(point_features, name="point_features", low=1, fn=fn)
        check_int(hidden, name="hidden", low=1, fn=fn)
        self.reference_depth = check_positive(reference_depth, name="reference_depth", fn=fn)
        self.scales = feedback_map_scales(iterations, max_upsample)
        self.hand_layer = hand_layer
        num_params = self.num_rotations * 6 + self.num_betas + 3  # 6D rotations, β, raw translation
        kw = dict(device=device, dtype=dtype)
        # initial estimate: pooled tokens -> (6D, β) from identity / 0; a camera-aware wrist
        self.init_norm = nn.LayerNorm(dim, **kw)
        self.init_params = nn.Linear(dim, num_params - 3, **kw)
        self.init_translation = SpatialTranslationHead(dim, hidden=hidden, **kw)
        with torch.no_grad():
            self.init_params.weight.mul_(0.01)
            self.init_params.bias.copy_(torch.tensor([*IDENTITY_6D * self.num_rotations, *[0.0] * self.num_betas]))
        # one map, one point MLP and one update MLP per rectifier (PyMAF keeps them separate)
        scale, stages = 1, []
        for i, target in enumerate(self.scales):
            stages.append(_stage(dim if i == 0 else channels, channels, target > scale, device, dtype))
            scale = target
        self.stages = nn.ModuleList(stages)
        self.point_mlps = nn.ModuleList(
            relu_mlp((channels, max(channels // 2, point_features), point_features), **kw) for _ in range(iterations))
        self.updates = nn.ModuleList(
            relu_mlp((self.num_joints * point_features + num_params, hidden, hidden, num_params), **kw)
            for _ in range(iterations))
        with torch.no_grad():
            for mlp in self.updates:
                mlp[-1].weight.mul_(0.01)
                mlp[-1].bias.zero_()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, iterations={self.iterations}, scales={self.scales}"

    def feature_maps(self, tokens: torch.Tensor, grid_size: tuple[int, int]) -> list[torch.Tensor]:
        """The pyramid: one ``(B, channels, h s_k, w s_k)`` map per rectifier, ``s_k = self.scales[k]``."""
        h, w = check_size(grid_size, name="grid_size", fn="KeypointFeedbackRegressor.feature_maps")
        check_shape(tokens, f"B {h * w} {self.dim}", name="tokens", fn="KeypointFeedbackRegressor.feature_maps")
        x = tokens.transpose(1, 2).reshape(tokens.shape[0], self.dim, h, w)  # (B, D, h, w), row-major tokens
        maps = []
        for stage in self.stages:
            x = stage(x)  # (B, C, h s_k, w s_k)
            maps.append(x)
        return maps

    def forward(self, tokens: torch.Tensor, grid_size: tuple[int, int], K: torch.Tensor,
                image_size: tuple[int, int], *, rotation_prior: torch.Tensor | None = None,
                translation_raw: torch.Tensor | None = None) -> list[HandEstimate]:
        """Every estimate of the loop, the initial one first (see the class docstring).

        Args:
            tokens: ``(B, h w, D)`` encoder tokens, row-major over the grid.
            grid_size: ``(h, w)``.
            K: ``(B, 3, 3)`` intrinsics of the image.
            image_size: ``(H, W)`` pixels.
            rotation_prior: optional ``(B, 16, 3, 3)`` local rotations (MANO order, the hand layer's input
                convention) that the initial estimate takes instead of the pooled-token regression's (which then
                gives β only), e.g. :func:`~hoimask.hand.rotations_from_joints` of 2.5D keypoints
                (:class:`~hoimask.models.HandMIMPoseModel`'s ``init="keypoints"``); the rectifiers refine them.
                (A pooled residual on top of them was measured to make the hand 6 mm worse.)
            translation_raw: optional ``(B, 3)`` output of :attr:`init_translation` for these tokens, when the
                caller has computed it already (it is otherwise computed here).
        """
        fn = "KeypointFeedbackRegressor.forward"
        h, w = check_size(grid_size, name="grid_size", fn=fn)
        dims = check_shape(tokens, f"B {h * w} {self.dim}", name="tokens", fn=fn)
        check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
        image_size = check_size(image_size, name="image_size", fn=fn)
        B = dims["B"]
        K = K.to(tokens.dtype)
        pooled = self.init_norm(tokens).mean(dim=1)  # (B, D)
        params = self.init_params(pooled)  # (B, 16 * 6 + 10)
        rotation_6d = params[:, : 6 * self.num_rotations].reshape(B, self.num_rotations, 6)
        if rotation_prior is not None:
            check_shape(rotation_prior, f"{B} {self.num_rotations} 3 3", name="rotation_prior", fn=fn)
            rotation_6d = matrix_to_rotation_6d(rotation_prior.to(rotation_6d.dtype))
        if translation_raw is None:
            translation_raw = self.init_translation(tokens, (h, w))
        else:
            check_shape(translation_raw, f"{B} 3", name="translation_raw", fn=fn)
        estimate = self._pose(rotation_6d, params[:, 6 * self.num_rotations:], translation_raw, K, image_size)
        estimates = [estimate]
        for feature_map, point_mlp, update in zip(self.feature_maps(tokens, (h, w)), self.point_mlps, self.updates):
            current = HandEstimate(*(t.detach() for t in estimate))  # PyMAF feeds back a detached estimate
            features, _ = pixel_aligned_features(current.joints, K, [feature_map], image_size)  # (B, 21, C)
            point = point_mlp(features).flatten(1)  # (B, 21 * point_features)
            state = torch.cat([current.rotation_6d.flatten(1), current.shape, current.translation_raw],
                              dim=1)  # (B, 96 + 10 + 3)
            state = state + update(torch.cat([point, state], dim=1))  # residual update
            n = 6 * self.num_rotations
            estimate = self._pose(state[:, :n].reshape(B, self.num_rotations, 6), state[:, n:n + self.num_betas],
                                  state[:, n + self.num_betas:], K, image_size)
            estimates.append(estimate)
        return estimates

    def _pose(self, rotation_6d: torch.Tensor, shape: torch.Tensor, raw: torch.Tensor, K: torch.Tensor,
              image_size: tuple[int, int]) -> HandEstimate:
        """Pose the hand layer (as :func:`hoimask.losses.hand_from_rotation_6d`) and hang its wrist at ``t``."""
        translation = translation_from_image(raw, K, image_size, reference_depth=self.reference_depth)  # (B, 3) m
        pose = matrix_to_axis_angle(rotation_6d_to_matrix(rotation_6d))  # (B, 16, 3)
        out = self.hand_layer(pose, shape, shape.new_zeros(shape.shape[0], 3))
        offset = translation[:, None] - out.joints[:, :1]  # (B, 1, 3): wrist -> t
        joints = out.joints + offset
        return HandEstimate(rotation_6d, shape, raw, translation, joints, out.vertices + offset, project(joints, K))
