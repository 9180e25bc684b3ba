"""Configuration and presets of :class:`~hoimask.models.MaskHOI` and :class:`~hoimask.models.MAE`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from hoimask._checks import ValueRangeError, check_choice
from hoimask.losses.weighted import MASKHOI_WEIGHTS
from hoimask.models._batch import MASKER_KINDS
from hoimask.nn.pixel_norm import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["MaskHOIConfig", "MASKHOI_PRESETS", "resolve_preset", "DEFAULT_GROUP_WEIGHTS", "DEFAULT_TERM_WEIGHTS"]

#: λ1..λ4 of eq. (1). The paper publishes no values; see docs/losses.md.
DEFAULT_GROUP_WEIGHTS: dict[str, float] = dict(MASKHOI_WEIGHTS)

#: Weights of the individual terms inside each group of eq. (1) (our choice; see docs/losses.md).
DEFAULT_TERM_WEIGHTS: dict[str, float] = {
    "segmentation": 1.0,
    "heatmap": 100.0,
    "sdf_hand": 10.0,
    "sdf_object": 10.0,
    "mano_params": 1.0,
    "hand_joints": 10.0,
    "hand_vertices": 10.0,
    "object_pose": 1.0,
}


@dataclass
class MaskHOIConfig:
    """Every hyper-parameter of MaskHOI; presets fill it, keywords override it.

    Encoder: ``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``.
    Decoders (hand and object, identical): ``decoder_dim``, ``decoder_depth``,
    ``decoder_heads``. DPT: ``dpt_feature_dim``, ``dpt_reassemble_dims``. SDF:
    ``sdf_hidden``, ``sdf_layers``, ``sdf_bands``, ``sdf_clamp`` (m). Parameter
    heads: ``head_dim``, ``mano_head_depth``. Masking: ``masking``
    (``"hybrid"``, ``"region"``, ``"random"``, ``"target"``), ``mask_ratio`` (overall), ``masker_kwargs``.
    Ablations (Table IV): ``geometric`` (GML: SDF branch), ``direct_regression``
    (DPR: MANO / object heads). Losses: ``weights`` (λ1..λ4 of eq. 1),
    ``term_weights`` (inside each group) — partial dictionaries update the
    defaults — and ``heatmap_sigma`` (heatmap pixels).
    Hand layer: ``mano_path`` (None: the licence-free procedural hand).
    Input: ``pixel_mean``, ``pixel_std`` — the model takes RGB in ``[0, 1]``
    and normalises it with these (ImageNet's by default; :class:`~hoimask.nn.PixelNormalization`).
    """

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_dim: int = 256
    decoder_depth: int = 4
    decoder_heads: int = 8
    dpt_feature_dim: int = 256
    dpt_reassemble_dims: tuple[int, int, int, int] = (96, 192, 384, 768)
    sdf_hidden: int = 256
    sdf_layers: int = 3
    sdf_bands: int = 8
    sdf_clamp: float = 0.05
    head_dim: int = 256
    mano_head_depth: int = 2
    masking: str = "hybrid"
    mask_ratio: float = 0.75
    masker_kwargs: dict[str, Any] = field(default_factory=dict)
    geometric: bool = True
    direct_regression: bool = True
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    term_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TERM_WEIGHTS))
    heatmap_sigma: float = 1.5
    mano_path: str | None = None
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        check_choice(self.masking, MASKER_KINDS, name="masking", fn="MaskHOIConfig")
        if self.img_size % self.patch_size:
            raise ValueRangeError(
                f"MaskHOIConfig(): argument 'img_size' ({self.img_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueRangeError(f"MaskHOIConfig(): argument 'mask_ratio' must lie in [0, 1), got {self.mask_ratio}")
        self.dpt_reassemble_dims = tuple(self.dpt_reassemble_dims)
        self.pixel_mean, self.pixel_std = tuple(self.pixel_mean), tuple(self.pixel_std)
        # Partial dictionaries update the defaults; unknown names are errors.
        for attr, defaults in (("weights", DEFAULT_GROUP_WEIGHTS), ("term_weights", DEFAULT_TERM_WEIGHTS)):
            given = dict(getattr(self, attr))
            unknown = sorted(set(given) - set(defaults))
            if unknown:
                raise ValueRangeError(f"MaskHOIConfig(): argument '{attr}' has unknown names {unknown}; known {sorted(defaults)}")
            for name, value in given.items():
                if not value >= 0:
                    raise ValueRangeError(f"MaskHOIConfig(): argument '{attr}[{name!r}]' must be >= 0, got {value}")
            setattr(self, attr, {**defaults, **given})


#: ``tiny``: trains on a CPU (128 px, 8x8 grid, 4-block ViT-Ti width). ``paper``: ViT-B/16 at 224 px (§IV-B).
MASKHOI_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        img_size=128,
        patch_size=16,
        embed_dim=192,
        depth=4,
        num_heads=3,
        decoder_dim=128,
        decoder_depth=2,
        decoder_heads=4,
        dpt_feature_dim=32,
        dpt_reassemble_dims=(32, 64, 96, 128),
        sdf_hidden=128,
        sdf_bands=6,
        head_dim=128,
        mano_head_depth=1,
    ),
    "paper": dict(),
}


def resolve_preset(name: str, overrides: dict[str, Any]) -> MaskHOIConfig:
    """Build a :class:`MaskHOIConfig` from a preset name and keyword overrides.

    Args:
        name: ``"tiny"`` or ``"paper"``.
        overrides: field name -> value; unknown names raise.

    Returns:
        The configuration.
    """
    check_choice(name, tuple(MASKHOI_PRESETS), name="name", fn="MaskHOI.from_preset")
    known = {f.name for f in fields(MaskHOIConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueRangeError(f"MaskHOI.from_preset(): unknown overrides {unknown}; known: {sorted(known)}")
    return replace(MaskHOIConfig(), **{**MASKHOI_PRESETS[name], **overrides})
