"""Procedural colours for synthetic scenes: backgrounds, object textures, skin tones, shading.

All functions draw their randomness from an explicit ``torch.Generator`` and
return tensors in ``[0, 1]``; nothing here touches the global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hoimask._checks import check_choice, check_positive, check_shape

__all__ = [
    "OBJECT_PATTERNS",
    "SKIN_TONES",
    "object_albedo",
    "random_background",
    "sample_skin_tone",
    "sample_texture",
    "shade",
]

#: Base skin tones (linear-ish RGB in [0, 1]) from light to dark; samples jitter around them.
SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    (0.96, 0.80, 0.69),
    (0.90, 0.72, 0.58),
    (0.80, 0.60, 0.46),
    (0.66, 0.46, 0.33),
    (0.50, 0.33, 0.22),
    (0.36, 0.23, 0.15),
)

#: Object texture patterns understood by :func:`object_albedo`.
OBJECT_PATTERNS: tuple[str, ...] = ("plain", "stripes", "checker", "waves")


def _uniform(generator: torch.Generator | None, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def random_background(
    height: int, width: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A random textured background: blurred colour noise, stripes and a gradient, mixed.

    Args:
        height: ``H``.
        width: ``W``.
        generator: source of randomness.
        dtype: floating dtype of the result.

    Returns:
        ``(3, H, W)`` RGB in ``[0, 1]`` (CPU).

    Shape:
        ``-> (3, H, W)``
    """
    check_positive(height, name="height")
    check_positive(width, name="width")
    g = generator
    cells = int(torch.randint(2, 12, (1,), generator=g))
    noise = torch.rand((1, 3, cells, cells), generator=g)
    low = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)[0]  # (3, H, W)
    c1, c2 = torch.rand(3, generator=g), torch.rand(3, generator=g)
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    angle = float(_uniform(g, 1, high=math.pi))
    freq = float(_uniform(g, 1, low=2.0, high=14.0))
    phase = float(_uniform(g, 1, high=2 * math.pi))
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle)) + phase)
    sharp = float(_uniform(g, 1)) < 0.5
    if sharp:
        stripes = (stripes > 0.5).to(stripes.dtype)
    mix_weights = torch.rand(3, generator=g)
    mix_weights = mix_weights / mix_weights.sum()
    pattern = mix_weights[0] * stripes + mix_weights[1] * y + mix_weights[2] * x  # (H, W)
    image = c1[:, None, None] * (1 - pattern) + c2[:, None, None] * pattern
    image = 0.55 * image + 0.45 * low
    image = image + 0.02 * torch.randn((3, height, width), generator=g)
    return image.clamp(0, 1).to(dtype)


def sample_skin_tone(generator: torch.Generator | None = None) -> torch.Tensor:
    """A skin colour: one of :data:`SKIN_TONES` with a small random jitter.

    Args:
        generator: source of randomness.

    Returns:
        ``(3,)`` RGB in ``[0, 1]``.

    Shape:
        ``-> (3,)``
    """
    i = int(torch.randint(len(SKIN_TONES), (1,), generator=generator))
    base = torch.tensor(SKIN_TONES[i])
    return (base + 0.04 * (torch.rand(3, generator=generator) - 0.5)).clamp(0, 1)


def sample_texture(generator: torch.Generator | None = None) -> dict[str, torch.Tensor | str]:
    """Random parameters of an object texture for :func:`object_albedo`.

    Args:
        generator: source of randomness.

    Returns:
        ``{"pattern": str, "color_a": (3,), "color_b": (3,), "frequency": (), "axis": (3,)}``.

    Shape:
        see Returns.
    """
    g = generator
    pattern = OBJECT_PATTERNS[int(torch.randint(len(OBJECT_PATTERNS), (1,), generator=g))]
    axis = torch.randn(3, generator=g)
    return {
        "pattern": pattern,
        "color_a": torch.rand(3, generator=g),
        "color_b": torch.rand(3, generator=g),
        "frequency": _uniform(g, 1, low=20.0, high=90.0)[0],
        "axis": axis / axis.norm().clamp_min(1e-6),
    }


def object_albedo(local_points: torch.Tensor, texture: dict[str, torch.Tensor | str]) -> torch.Tensor:
    """Colour of an object's surface at points given in the object's own frame.

    Args:
        local_points: ``(M, 3)`` surface points in the object frame, metres.
        texture: parameters from :func:`sample_texture`.

    Returns:
        ``(M, 3)`` RGB in ``[0, 1]``.

    Shape:
        ``(M, 3) -> (M, 3)``
    """
    check_shape(local_points, "M 3", name="local_points")
    pattern = check_choice(texture["pattern"], OBJECT_PATTERNS, name="texture['pattern']")
    dt = local_points.dtype
    a = texture["color_a"].to(dt)
    b = texture["color_b"].to(dt)
    f = float(texture["frequency"])
    axis = texture["axis"].to(dt)
    if pattern == "plain":
        w = torch.zeros_like(local_points[:, 0])
    elif pattern == "stripes":
        w = (torch.sin(f * (local_points @ axis)) > 0).to(dt)
    elif pattern == "checker":
        s = torch.sin(f * local_points).prod(dim=1)
        w = (s > 0).to(dt)
    else:  # waves
        w = 0.5 + 0.5 * torch.sin(f * (local_points @ axis) + 3 * torch.sin(0.5 * f * local_points[:, 0]))
    return a * (1 - w[:, None]) + b * w[:, None]


def shade(
    albedo: torch.Tensor,
    normals: torch.Tensor,
    view_dirs: torch.Tensor,
    light_dir: torch.Tensor,
    *,
    ambient: float = 0.35,
    specular: float = 0.15,
    shininess: float = 24.0,
) -> torch.Tensor:
    """Blinn–Phong shading with one directional light.

    Args:
        albedo: ``(M, 3)`` surface colours.
        normals: ``(M, 3)`` unit outward normals.
        view_dirs: ``(M, 3)`` unit ray directions (camera to surface).
        light_dir: ``(3,)`` unit direction *towards* the light.
        ambient: ambient term.
        specular: specular strength.
        shininess: Blinn–Phong exponent.

    Returns:
        ``(M, 3)`` RGB clipped to ``[0, 1]`` (the picture's range).

    Shape:
        ``(M, 3) -> (M, 3)``
    """
    dims = check_shape(albedo, "M 3", name="albedo")
    check_shape(normals, "M 3", name="normals", dims=dims)
    check_shape(view_dirs, "M 3", name="view_dirs", dims=dims)
    check_shape(light_dir, "3", name="light_dir")
    # Normals facing away from the camera (back faces of open meshes) are flipped.
    facing = (normals * view_dirs).sum(-1, keepdim=True)
    n = torch.where(facing > 0, -normals, normals)
    diffuse = (n @ light_dir).clamp_min(0)[:, None]
    half = light_dir[None] - view_dirs
    half = half / half.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    spec = (n * half).sum(-1).clamp_min(0).pow(shininess)[:, None]
    return (albedo * (ambient + (1 - ambient) * diffuse) + specular * spec).clamp(0, 1)
