"""SDF decoder: ``d = MLP(FPE(p) ⊕ p ⊕ f(π(p, K)))`` (MaskHOI §III-C, HOISDF §3.1).

Query points in the camera frame are projected with the intrinsics, the
multi-scale feature maps are sampled bilinearly at the projections
(:func:`hoimask.geometry.sampling.pixel_aligned_features`), and concatenated
with the point's Fourier encoding and the point itself. A 3-layer MLP with a
``tanh`` output (scaled by ``output_scale``, HOISDF) gives the signed distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hoimask._checks import ValueRangeError, check_shape
from hoimask.encoding import FourierEncoder
from hoimask.geometry.sampling import pixel_aligned_features

__all__ = ["SDFDecoder"]


class SDFDecoder(nn.Module):
    """Signed-distance decoder on pixel-aligned multi-scale features.

    Args:
        feature_dim: total channels ΣC_i of the feature maps it will sample.
        hidden: MLP width.
        num_layers: number of linear layers (3 in HOISDF).
        num_bands: Fourier frequencies of the point encoding.
        output_scale: the output is ``output_scale * tanh(.)`` metres; use the
            loss's clamp distance so the decoder can reach every target.

    Shape:
        points ``(B, Q, 3)`` m, K ``(B, 3, 3)``, feature_maps ``[(B, C_i, H_i, W_i)]``
        -> sdf ``(B, Q)`` m.
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        hidden: int = 256,
        num_layers: int = 3,
        num_bands: int = 8,
        output_scale: float = 0.05,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueRangeError(f"SDFDecoder(): argument 'num_layers' expected an int >= 1, got {num_layers}")
        self.feature_dim = feature_dim
        self.output_scale = float(output_scale)
        self.encoder = FourierEncoder(3, num_bands=num_bands, include_input=False)
        width = self.encoder.out_dim + 3 + feature_dim
        layers: list[nn.Module] = []
        for i in range(num_layers):
            out = 1 if i == num_layers - 1 else hidden
            layers.append(nn.Linear(width, out, device=device, dtype=dtype))
            if i < num_layers - 1:
                layers.append(nn.ReLU())
            width = out
        self.mlp = nn.Sequential(*layers)

    def forward(
        self,
        points: torch.Tensor,
        K: torch.Tensor,
        feature_maps: Sequence[torch.Tensor],
        image_size: tuple[int, int],
    ) -> torch.Tensor:
        """Predict the signed distance of every query point.

        Args:
            points: ``(B, Q, 3)`` camera-frame query points (m).
            K: ``(B, 3, 3)`` intrinsics of the (cropped) image in pixels.
            feature_maps: maps covering the image; any resolutions.
            image_size: ``(H, W)`` of the image the intrinsics refer to.

        Returns:
            ``(B, Q)`` signed distances in metres, within ``±output_scale``.
            Points projecting outside the image get zero image features.
        """
        dims = check_shape(points, "B Q 3", name="points")
        check_shape(K, "B 3 3", name="K", dims=dims)
        features, _ = pixel_aligned_features(points, K, list(feature_maps), image_size)  # (B, Q, ΣC)
        check_shape(features, f"B Q {self.feature_dim}", name="feature_maps (sampled)", dims=dims)
        x = torch.cat([self.encoder(points), points, features], dim=-1)
        return self.output_scale * torch.tanh(self.mlp(x).squeeze(-1))
