"""HOISDF's point tokens (§3.2.2–3.2.3): position, positional encoding, density-weighted image feature.

A sampled query point becomes a token ``[p - c, γ(s·(p - c)), MLP(f) · σ(d)]``
with ``σ`` the volume density of the point's (detached) signed distance.
Hand tokens use the hand field, object tokens the object field; cross tokens
(§3.2.3) are object points seen by the hand field and vice versa. The tokens
feed :class:`~hoimask.nn.PointPoseTransformer` and
:class:`~hoimask.nn.PointTransformerEncoder`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_shape,
)
from hoimask.encoding import FourierEncoder
from hoimask.nn._mlp import relu_mlp

__all__ = ["PointTokenEmbedding"]


class PointTokenEmbedding(nn.Module):
    """Point tokens ``[p - c, γ(s·(p - c)), MLP(f) · σ(d)]`` (HOISDF eq. 5–6).

    ``p`` are camera-frame points, ``c`` the centre of the field the token is
    expressed in (hand root or object centre), ``s = point_scale``, ``γ`` the
    NeRF encoding of :class:`~hoimask.nn.DeepSDFDecoder` (``sin(2^k x)``,
    ``num_bands`` frequencies, no raw input), ``f`` the pixel-aligned image
    features of the point (e.g. ``DeepSDFOutput.image_features``) and ``d``
    the point's predicted signed distance in that field, **detached** (the
    density only re-weights features; it does not train the SDF). In
    HOISDF's code the relative position is in metres while ``γ`` sees the
    scaled coordinates; so it is here.

    Feature MLP (HOISDF's ``linear_transformerin``): ``C → 1024 → 512 → 256 →
    feature_dim`` with a ReLU after every layer, shared by all fields. By
    default ``feature_dim = dim - 3 - 6·num_bands`` (223) so that the
    concatenation is exactly ``dim`` (256) wide, as in the code, and no
    projection follows; give ``feature_dim`` explicitly to concatenate at any
    width and add a linear projection to ``dim``.

    Density (one learnable parameter per field, HOISDF's ``sigmoid_beta``
    initialised at 0.1 and floored at 2e-3). The official code computes
    ``σ = sigmoid(d / β) / β`` (higher *outside* the surface; the paper's
    eq. is ``σ = α⁻¹ sigmoid(-d / α)``, higher *inside*). Both are
    :class:`~hoimask.sdf.VolumeDensity` with ``α = β``:
    ``density_sign="code"`` (default) evaluates it at ``-d``,
    ``density_sign="paper"`` at ``d``. The floor differs in form: HOISDF
    clamps β in place (``β ← max(β, 2e-3)``); ``VolumeDensity`` keeps
    ``α = α_min + softplus(raw)`` above the floor smoothly, so at the start
    the gradient reaching ``α`` is ``sigmoid(raw) ≈ 0.09`` times the code's.
    ``sdf_clamp`` (0.15, HOISDF's clamping distance in scaled units) clamps
    ``d`` before the density, as the code's decoder output is clamped.

    Args:
        feature_channels: C of the per-point features ``f``.
        dim: token width (transformer hidden size, 256).
        feature_hidden: hidden widths of the feature MLP ((1024, 512, 256)).
        feature_dim: width of ``MLP(f)``; ``None`` = ``dim - 3 - 6·num_bands``
            with no projection (HOISDF).
        num_bands: frequencies of ``γ`` (5).
        encoding_pi: ``sin(2^k π x)`` instead of the code's ``sin(2^k x)``.
        point_scale: ``s`` (3.1).
        fields: names of the fields, one learnable density each.
        beta_init: initial ``β`` (0.1).
        beta_min: floor of ``β`` (2e-3).
        density_sign: ``"code"`` (``sigmoid(d/β)/β``) or ``"paper"`` (``sigmoid(-d/β)/β``).
        sdf_clamp: clamp ``|d|`` to this before the density (``None``: no clamp).

    Shape:
        - points: ``(B, N, 3)`` m; center: ``(B, 3)`` m; features: ``(B, N, C)``; sdf: ``(B, N)``
        - output: ``(B, N, dim)``

    Example:
        >>> emb = PointTokenEmbedding(8, dim=64, feature_hidden=(32,))
        >>> points = torch.rand(2, 5, 3)
        >>> tokens = emb(points, points[:, 0], torch.rand(2, 5, 8), torch.zeros(2, 5), field="hand")
        >>> tokens.shape, emb.feature_dim
        (torch.Size([2, 5, 64]), 31)
        >>> torch.equal(tokens[0, 0, :3], torch.zeros(3))  # position relative to the centre
        True
    """

    def __init__(
        self,
        feature_channels: int,
        *,
        dim: int = 256,
        feature_hidden: Sequence[int] = (1024, 512, 256),
        feature_dim: int | None = None,
        num_bands: int = 5,
        encoding_pi: bool = False,
        point_scale: float = 3.1,
        fields: Sequence[str] = ("hand", "object"),
        beta_init: float = 0.1,
        beta_min: float = 2e-3,
        density_sign: str = "code",
        sdf_clamp: float | None = 0.15,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "PointTokenEmbedding.__init__"
        self.feature_channels = check_int(feature_channels, name="feature_channels", low=1, fn=fn)
        self.dim = check_int(dim, name="dim", low=1, fn=fn)
        check_int(num_bands, name="num_bands", low=1, fn=fn)
        for i, w in enumerate(feature_hidden):
            check_int(w, name=f"feature_hidden[{i}]", low=1, fn=fn)
        self.point_scale = check_positive(point_scale, name="point_scale", fn=fn)
        check_positive(beta_init, name="beta_init", fn=fn)
        check_positive(beta_min, name="beta_min", strict=False, fn=fn)
        self.density_sign = check_choice(density_sign, ("code", "paper"), name="density_sign", fn=fn)
        self.sdf_clamp = None if sdf_clamp is None else check_positive(sdf_clamp, name="sdf_clamp", fn=fn)
        self.encoding_pi = bool(encoding_pi)
        if isinstance(fields, str) or len(fields) == 0:
            raise ValueRangeError(f"{fn}(): argument 'fields' expected a non-empty sequence of names, got {fields!r}")
        self.encoder = FourierEncoder(3, num_bands=num_bands, include_input=False).to(device=device)
        fixed = 3 + self.encoder.out_dim
        if feature_dim is None:
            if dim <= fixed:
                raise ValueRangeError(
                    f"{fn}(): argument 'dim' expected > 3 + 6 * num_bands = {fixed} when feature_dim is None, got {dim}"
                )
            self.feature_dim = dim - fixed
            self.projection: nn.Module = nn.Identity()
        else:
            self.feature_dim = check_int(feature_dim, name="feature_dim", low=1, fn=fn)
            self.projection = nn.Linear(fixed + feature_dim, dim, device=device, dtype=dtype)
        self.feature_mlp = relu_mlp(
            [feature_channels, *feature_hidden, self.feature_dim], relu_last=True, device=device, dtype=dtype
        )
        # Imported here: hoimask.sdf registers the mesh_sdf custom op and its samplers, which
        # `import hoimask.nn` does not need (about 20 ms); only building this module does.
        from hoimask.sdf.density import VolumeDensity

        self.density = nn.ModuleDict(
            {
                name: VolumeDensity(beta_init, beta_min, device=device, dtype=dtype)
                for name in fields
            }
        )

    def sigma(self, sdf: torch.Tensor, field: str) -> torch.Tensor:
        """Volume density of the detached (and clamped) signed distances in ``field``, shape of ``sdf``."""
        check_choice(field, tuple(self.density.keys()), name="field")
        d = sdf.detach()
        if self.sdf_clamp is not None:
            d = d.clamp(-self.sdf_clamp, self.sdf_clamp)
        return self.density[field](-d if self.density_sign == "code" else d)

    def forward(
        self,
        points: torch.Tensor,
        center: torch.Tensor,
        features: torch.Tensor,
        sdf: torch.Tensor,
        *,
        field: str,
    ) -> torch.Tensor:
        """Embed points as tokens of ``field``.

        Args:
            points: ``(B, N, 3)`` camera-frame points (m), N >= 1.
            center: ``(B, 3)`` centre of ``field`` (hand root / object centre).
            features: ``(B, N, feature_channels)`` per-point image features.
            sdf: ``(B, N)`` the points' signed distances in ``field``
                (scaled units, as :class:`~hoimask.nn.DeepSDFDecoder` predicts).
            field: which density to use (one of ``fields``).

        Returns:
            ``(B, N, dim)`` tokens.
        """
        dims = check_shape(points, "B N 3", name="points")
        check_shape(center, "B 3", name="center", dims=dims)
        check_shape(features, f"B N {self.feature_channels}", name="features", dims=dims)
        check_shape(sdf, "B N", name="sdf", dims=dims)
        if dims["N"] == 0:
            raise ShapeError("PointTokenEmbedding.forward(): argument 'points' expected at least one point, got N=0")
        check_finite(points, name="points")
        check_finite(center, name="center")
        check_finite(sdf, name="sdf")
        relative = points - center.unsqueeze(1)  # (B, N, 3) m
        x = relative * self.point_scale
        encoding = self.encoder(x if self.encoding_pi else x / math.pi)  # (B, N, 6F)
        weighted = self.feature_mlp(features) * self.sigma(sdf, field).unsqueeze(-1)  # (B, N, feature_dim)
        return self.projection(torch.cat([relative, encoding, weighted], dim=-1))  # (B, N, dim)
