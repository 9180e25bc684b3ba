"""SDF decoders: ``d = MLP(FPE(p) ⊕ p ⊕ f(π(p, K)))`` (MaskHOI §III-C, HOISDF §3.1).

Query points in the camera frame are projected with the intrinsics, the
multi-scale feature maps are sampled bilinearly at the projections
(:func:`hoimask.geometry.sampling.pixel_aligned_features`), and concatenated
with the point's Fourier encoding and the point itself.

Two forms are offered:

* :class:`SDFDecoder` — the paper's description (HOISDF §3.1, used by
  MaskHOI): the sampled features go straight into a 3-layer MLP with a
  ``tanh`` output scaled by ``output_scale``; points in camera metres;
  NeRF encoding with π.
* :class:`DeepSDFDecoder` — what the official HOISDF code runs (its
  ``sdf_net``): points centred on the hand root / object centre and scaled
  by 3.1, the sampled features mapped to 256 by an MLP, a DeepSDF network of
  four weight-normalised 512-wide layers with the input concatenated back in,
  dropout 0.2 and a final ``tanh``; the output is in the scaled units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_finite,
    check_in_range,
    check_int,
    check_positive,
    check_shape,
)
from hoimask.encoding import FourierEncoder
from hoimask.geometry.sampling import pixel_aligned_features
from hoimask.nn._mlp import relu_mlp

__all__ = ["SDFDecoder", "DeepSDFDecoder", "DeepSDFOutput"]


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
        check_int(feature_dim, name="feature_dim", low=1)
        check_int(hidden, name="hidden", low=1)
        check_int(num_layers, name="num_layers", low=1)
        self.feature_dim = feature_dim
        self.output_scale = check_positive(output_scale, name="output_scale")
        self.encoder = FourierEncoder(3, num_bands=num_bands, include_input=False).to(device=device)
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


class DeepSDFOutput(NamedTuple):
    """What :class:`DeepSDFDecoder` returns for a set of query points."""

    sdf: torch.Tensor  #: (B, Q) signed distances in the scaled units (metres × point_scale)
    hidden: torch.Tensor  #: (B, Q, hidden) activation fed to the output layer
    image_features: torch.Tensor  #: (B, Q, ΣC) pixel-aligned features sampled at the points
    encoding: torch.Tensor  #: (B, Q, 6·num_bands) positional encoding of the scaled points
    valid: torch.Tensor  #: (B, Q) bool, False where the point is behind the camera or outside the image


class DeepSDFDecoder(nn.Module):
    """HOISDF's SDF network (official ``sdf_net``): a DeepSDF MLP on pixel-aligned features.

    Per query point ``p`` (camera frame, metres) with a centre ``c`` (hand
    root or object centre) and ``x = point_scale · (p - c)``:

    1. ``f = feature_mlp(F(π(p, K)))``: the multi-scale maps are sampled at the
       projection and mapped to ``feature_dim`` (256) by a ReLU MLP
       (ΣC → 512 → 256, ReLU after every layer, as HOISDF's ``linear_sdfin``);
    2. ``e = γ(x)``: NeRF encoding with ``num_bands`` (5) log-spaced
       frequencies ``2^0 … 2^(F-1)``, sin and cos, raw input excluded
       (``6 F`` = 30 dims);
    3. the DeepSDF MLP on ``z = [f, e, x]`` (``feature_dim + 6F + 3`` = 289):
       ``num_layers`` (4) hidden layers of width ``hidden`` (512), each with
       weight normalisation, ReLU and dropout; ``z`` is concatenated back in
       front of layer ``skip_layer`` (2), so the layer before it outputs
       ``hidden - len(z)`` (223) and the concatenation is ``hidden`` wide;
       then a linear output layer and ``tanh``.

    The output is in the scaled units: multiply metric targets by
    ``point_scale`` and clamp both sides in the loss (HOISDF: ±0.15 ≈ 4.8 cm),
    e.g. ``sdf_l1_loss(out.sdf, target_m * 3.1, clamp_distance=0.15)``. The
    module itself does not clamp (HOISDF clamps inside ``sdf_forward``; the
    tanh already bounds the output to ±1).

    Differences from the official code (documented, deliberate):

    * Encoding: HOISDF's NeRF embedder computes ``sin(2^k x)`` without π and
      orders the output frequency-major (``sin f1, cos f1, sin f2, …``).
      :class:`~hoimask.encoding.FourierEncoder` computes ``sin(π f x)``
      dimension-major; the decoder feeds it ``x / π`` so the frequencies are
      exactly HOISDF's. The order is a fixed permutation (irrelevant when
      training from scratch; it matters only for loading official weights).
      ``encoding_pi=True`` gives the NeRF paper's ``sin(2^k π x)`` instead.
    * Sampling: HOISDF normalises projections by ``(W - 1) / 2`` and samples
      with ``align_corners=True``, border padding, for every point (pixel
      centres at integer coordinates, map corners aligned to the centres of
      the corner pixels). :func:`~hoimask.geometry.sampling.pixel_aligned_features`
      uses the library's convention (pixel centres at ``j + 0.5``,
      ``align_corners=False``, maps spanning the image edge to edge) — a
      sub-pixel shift of at most half a feature cell — and gives *zero*
      features (``valid = False``) to points behind the camera or outside
      the image where HOISDF reads the border value. HOISDF also detaches
      the sampling grid; here gradients reach the points.
    * Weight norm (``torch.nn.utils.parametrizations.weight_norm``) is on the
      hidden layers; the output layer is a plain linear layer, as in the
      code (``norm_layers = [0, 1, 2, 3]``). The optional part classifier
      (off in HOISDF) is not provided.

    The paper (§3.1) describes a 3-layer MLP with a tanh output on
    ``p ⊕ f_pos ⊕ f_img`` and a smooth-L1 loss: that simpler form is
    :class:`SDFDecoder` (MaskHOI's decoder), kept unchanged beside this one.

    Args:
        feature_channels: total channels ΣC_i of the feature maps it samples.
        feature_dim: width of the image feature after ``feature_mlp`` (256).
        feature_hidden: hidden widths of ``feature_mlp`` ((512,) in HOISDF).
        hidden: width of the DeepSDF layers (512).
        num_layers: number of hidden DeepSDF layers (4).
        skip_layer: index of the hidden layer that receives ``[h, z]``
            (2, DeepSDF's ``latent_in``); ``None`` for no skip connection.
        num_bands: frequencies of the positional encoding (5).
        encoding_pi: use ``sin(2^k π x)`` (NeRF paper) instead of the code's
            ``sin(2^k x)``.
        dropout: dropout probability after every hidden layer (0.2).
        point_scale: factor applied to centred points and to distances (3.1).

    Shape:
        - points: ``(B, Q, 3)`` m; center: ``(B, 3)`` m; K: ``(B, 3, 3)``;
          feature_maps[i]: ``(B, C_i, H_i, W_i)`` with ``ΣC_i = feature_channels``
        - output: :class:`DeepSDFOutput` with sdf ``(B, Q)``

    Raises:
        ShapeError: wrong shapes, no query point, or ``ΣC_i != feature_channels``.
        ValueRangeError: non-finite points or centres; bad constructor values.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> dec = DeepSDFDecoder(8, feature_dim=16, feature_hidden=(32,), hidden=64)
        >>> K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]])
        >>> points = torch.tensor([[[0.0, 0.0, 0.5], [0.01, 0.02, 0.52]]])
        >>> out = dec(points, points[:, 0], K, [torch.randn(1, 8, 16, 16)], (64, 64))
        >>> out.sdf.shape, out.hidden.shape, out.image_features.shape, out.encoding.shape
        (torch.Size([1, 2]), torch.Size([1, 2, 64]), torch.Size([1, 2, 8]), torch.Size([1, 2, 30]))
        >>> bool(out.sdf.abs().max() < 1)
        True
    """

    def __init__(
        self,
        feature_channels: int,
        *,
        feature_dim: int = 256,
        feature_hidden: Sequence[int] = (512,),
        hidden: int = 512,
        num_layers: int = 4,
        skip_layer: int | None = 2,
        num_bands: int = 5,
        encoding_pi: bool = False,
        dropout: float = 0.2,
        point_scale: float = 3.1,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "DeepSDFDecoder.__init__"
        self.feature_channels = check_int(feature_channels, name="feature_channels", low=1, fn=fn)
        check_int(feature_dim, name="feature_dim", low=1, fn=fn)
        for i, w in enumerate(feature_hidden):
            check_int(w, name=f"feature_hidden[{i}]", low=1, fn=fn)
        check_int(hidden, name="hidden", low=1, fn=fn)
        self.num_layers = check_int(num_layers, name="num_layers", low=1, fn=fn)
        if skip_layer is not None:
            check_int(skip_layer, name="skip_layer", low=1, high=num_layers - 1, fn=fn)
        self.skip_layer = skip_layer
        check_int(num_bands, name="num_bands", low=1, fn=fn)
        self.dropout_p = check_in_range(dropout, name="dropout", low=0.0, high=1.0, high_inclusive=False, fn=fn)
        self.point_scale = check_positive(point_scale, name="point_scale", fn=fn)
        self.encoding_pi = bool(encoding_pi)

        self.feature_mlp = relu_mlp(
            [feature_channels, *feature_hidden, feature_dim], relu_last=True, device=device, dtype=dtype
        )
        self.encoder = FourierEncoder(3, num_bands=num_bands, include_input=False).to(device=device)
        self.input_dim = feature_dim + self.encoder.out_dim + 3
        if skip_layer is not None and hidden <= self.input_dim:
            raise ValueRangeError(
                f"{fn}(): argument 'hidden' expected > the decoder input width {self.input_dim} "
                f"(feature_dim + 6 * num_bands + 3) so the layer before the skip has a positive width, got {hidden}"
            )
        layers = []
        for i in range(num_layers):
            width_in = self.input_dim if i == 0 else hidden
            width_out = hidden - self.input_dim if skip_layer is not None and i + 1 == skip_layer else hidden
            layers.append(weight_norm(nn.Linear(width_in, width_out, device=device, dtype=dtype)))
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(self.dropout_p)
        self.output = nn.Linear(hidden, 1, device=device, dtype=dtype)

    def scaled(self, points: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """``point_scale · (points - center)``: the coordinates the MLP sees, ``(B, Q, 3)``."""
        return (points - center.unsqueeze(1)) * self.point_scale

    def forward(
        self,
        points: torch.Tensor,
        center: torch.Tensor,
        K: torch.Tensor,
        feature_maps: Sequence[torch.Tensor],
        image_size: tuple[int, int],
    ) -> DeepSDFOutput:
        """Predict the signed distance of every query point.

        Args:
            points: ``(B, Q, 3)`` camera-frame query points (m), Q >= 1.
            center: ``(B, 3)`` centre the field is expressed around (hand
                root for the hand field, object centre for the object field).
            K: ``(B, 3, 3)`` intrinsics of the image the maps cover (pixels).
            feature_maps: maps covering that image; any resolutions.
            image_size: ``(H, W)`` of that image.

        Returns:
            :class:`DeepSDFOutput`; ``sdf`` in scaled units within ``(-1, 1)``.
        """
        dims = check_shape(points, "B Q 3", name="points")
        check_shape(center, "B 3", name="center", dims=dims)
        check_shape(K, "B 3 3", name="K", dims=dims)
        if dims["Q"] == 0:
            raise ShapeError("DeepSDFDecoder.forward(): argument 'points' expected at least one query point, got Q=0")
        check_finite(points, name="points")
        check_finite(center, name="center")
        sampled, valid = pixel_aligned_features(points, K, list(feature_maps), image_size)  # (B, Q, ΣC)
        check_shape(sampled, f"B Q {self.feature_channels}", name="feature_maps (sampled channels)", dims=dims)
        x = self.scaled(points, center)  # (B, Q, 3) scaled units
        encoding = self.encoder(x if self.encoding_pi else x / math.pi)  # (B, Q, 6F)
        z = torch.cat([self.feature_mlp(sampled), encoding, x], dim=-1)  # (B, Q, input_dim)
        h = z
        for i, layer in enumerate(self.layers):
            if i == self.skip_layer:
                h = torch.cat([h, z], dim=-1)  # (B, Q, hidden)
            h = self.dropout(torch.relu(layer(h)))
        sdf = torch.tanh(self.output(h)).squeeze(-1)  # (B, Q)
        return DeepSDFOutput(sdf, h, sampled, encoding, valid)

    def extra_repr(self) -> str:
        return f"point_scale={self.point_scale:g}, skip_layer={self.skip_layer}, encoding_pi={self.encoding_pi}"
