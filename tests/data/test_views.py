"""HandMIM's two augmented views: the returned affines follow the image content; determinism; errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.data import (
    HANDMIM_VIEWS,
    TWO_VIEW_KEYS,
    RandomGrayscale,
    RandomSolarize,
    TwoViewTransform,
    ViewAugmentation,
    augment_view,
    collate,
    random_crop_affine,
    solarize,
    to_grayscale,
    two_views,
    view_to_view_affine,
    warp_image,
)

GEOMETRY_ONLY = ViewAugmentation(scale=(0.25, 1.0), rotation=(-150.0, 150.0), jitter_p=0.0, grayscale_p=0.0,
                                 blur_p=0.0, solarize_p=0.0)


def dot_image(x: float, y: float, size: int = 64, sigma: float = 2.0) -> torch.Tensor:
    """A white Gaussian dot centred at continuous pixel coordinates ``(x, y)`` on black."""
    v, u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    spot = torch.exp(-((u - x) ** 2 + (v - y) ** 2) / (2 * sigma**2))
    return spot.expand(3, size, size).clone()


def find_dot(view: torch.Tensor) -> torch.Tensor:
    """Intensity centroid ``(x, y)`` in continuous pixel coordinates."""
    w = view[0].double()
    v, u = torch.meshgrid(torch.arange(w.shape[0]) + 0.5, torch.arange(w.shape[1]) + 0.5, indexing="ij")
    return torch.stack([(w * u).sum() / w.sum(), (w * v).sum() / w.sum()])


def apply(affine: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    return affine[:2, :2] @ point + affine[:2, 2]


def inside(point: torch.Tensor, size: tuple[int, int], margin: float) -> bool:
    return bool(margin <= point[0] <= size[1] - margin and margin <= point[1] <= size[0] - margin)


def test_affines_map_view_pixels_to_where_the_dot_is():
    dot = torch.tensor([37.3, 22.8], dtype=torch.float64)
    image = dot_image(*dot.tolist())
    sizes = ((32, 32), (24, 40))  # views of different sizes
    checked = 0
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        view_a, affine_a = augment_view(image, GEOMETRY_ONLY, sizes[0], generator=g)
        view_b, affine_b = augment_view(image, GEOMETRY_ONLY, sizes[1], generator=g)
        # where the dot should be in each view, and keep the draws whose dot lies well inside both
        where_a = apply(torch.linalg.inv(affine_a), dot)
        where_b = apply(torch.linalg.inv(affine_b), dot)
        zoom = max(1 / math.sqrt(abs(torch.linalg.det(A[:2, :2]))) for A in (affine_a, affine_b))
        if not (inside(where_a, sizes[0], 8 * zoom) and inside(where_b, sizes[1], 8 * zoom)):
            continue
        found_a, found_b = find_dot(view_a), find_dot(view_b)
        # view -> original: the dot found in a view lands on the dot
        assert torch.allclose(apply(affine_a, found_a), dot, atol=0.1), seed
        assert torch.allclose(apply(affine_b, found_b), dot, atol=0.1), seed
        # view a -> view b through the original
        assert torch.allclose(apply(view_to_view_affine(affine_a, affine_b), found_a), found_b, atol=0.1 * zoom), seed
        checked += 1
    assert checked >= 8, checked


def test_two_views_returns_consistent_affines():
    image = torch.rand(3, 48, 40)
    views = two_views(image, (32, 24), generator=torch.Generator().manual_seed(3))
    assert views.view_a.shape == views.view_b.shape == (3, 32, 24)
    assert views.affine_a.dtype == torch.float64
    torch.testing.assert_close(views.affine_b @ views.affine_a_to_b, views.affine_a)
    assert 0 <= float(views.view_a.min()) and float(views.view_b.max()) <= 1
    assert two_views(image, generator=torch.Generator().manual_seed(3)).view_a.shape == (3, 48, 40)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31), low=st.floats(0.05, 1.0), angle=st.floats(-180, 180), spread=st.floats(0, 90))
def test_crop_affine_respects_the_ranges(seed, low, angle, spread):
    rotation = (angle, min(180.0, angle + spread))
    H, W, Ho, Wo = 60, 80, 16, 24
    A = random_crop_affine((H, W), (Ho, Wo), scale=(low, 1.0), rotation=rotation,
                           generator=torch.Generator().manual_seed(seed))
    assert torch.equal(A[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    linear = A[:2, :2]
    w, h = Wo * float(linear[0].norm()), Ho * float(linear[1].norm())  # crop box in original pixels
    assert low * H * W * (1 - 1e-9) <= w * h <= H * W * (1 + 1e-9)
    assert 3 / 4 - 1e-9 <= w / h <= 4 / 3 + 1e-9
    centre = apply(A, torch.tensor([Wo / 2, Ho / 2], dtype=torch.float64))  # rotation keeps the centre
    assert -1e-9 <= centre[0] - w / 2 and centre[0] + w / 2 <= W + 1e-9
    assert -1e-9 <= centre[1] - h / 2 and centre[1] + h / 2 <= H + 1e-9
    # the linear part is S⁻¹ R⁻¹: undo the scales, read the angle (clockwise positive, y down)
    R_inv = torch.diag(torch.tensor([Wo / w, Ho / h], dtype=torch.float64)) @ linear
    turn = math.degrees(math.atan2(-float(R_inv[1, 0]), float(R_inv[0, 0])))
    assert rotation[0] - 1e-6 <= turn <= rotation[1] + 1e-6 or abs(abs(turn) - 180) < 1e-6


def test_determinism_and_a_fixed_number_of_draws():
    image = torch.rand(3, 32, 32)
    a = two_views(image, 16, generator=torch.Generator().manual_seed(7))
    b = two_views(image, 16, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = two_views(image, 16, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a.affine_a, c.affine_a)
    # the stream advances by the same amount whatever the settings draw
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    two_views(image, 16, generator=g1)
    never = ViewAugmentation(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    two_views(image, 16, augmentations=(never, never), generator=g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_photometric_steps_follow_their_settings():
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    flat = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), rotation=(0.0, 0.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    plain, A = augment_view(image, ViewAugmentation(**flat), (32, 32))
    torch.testing.assert_close(A, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(plain, image)
    grey, _ = augment_view(image, ViewAugmentation(**{**flat, "grayscale_p": 1.0}), (32, 32))
    torch.testing.assert_close(grey, to_grayscale(image))
    solar, _ = augment_view(image, ViewAugmentation(**{**flat, "solarize_p": 1.0}), (32, 32))
    torch.testing.assert_close(solar, solarize(image))
    blurred, _ = augment_view(image, ViewAugmentation(**{**flat, "blur_p": 1.0}), (32, 32))
    assert blurred.std() < image.std()
    jittered, _ = augment_view(image, ViewAugmentation(**{**flat, "jitter_p": 1.0}), (32, 32),
                               generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(jittered, image)
    assert HANDMIM_VIEWS[0].blur_p == 1.0 and HANDMIM_VIEWS[1].solarize_p == 0.2


def test_grayscale_and_solarize():
    image = torch.rand(3, 4, 5)
    grey = to_grayscale(image)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    torch.testing.assert_close(grey[0], 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])
    s = solarize(image, 0.3)
    assert torch.equal(s[image < 0.3], image[image < 0.3])
    torch.testing.assert_close(s[image >= 0.3], 1 - image[image >= 0.3])
    sample = {"image": image, "joints_2d": torch.zeros(21, 2)}
    assert torch.equal(RandomGrayscale(p=1.0)(sample)["image"], grey)
    assert torch.equal(RandomGrayscale(p=0.0)(sample)["image"], image)
    assert torch.equal(RandomSolarize(p=1.0, threshold=0.3)(sample)["image"], s)
    assert RandomSolarize(p=1.0)(sample)["joints_2d"] is sample["joints_2d"]
    with pytest.raises(ValueRangeError, match="'threshold'"):
        solarize(image, 1.5)
    with pytest.raises(ValueRangeError, match="'p'"):
        RandomGrayscale(p=2.0)


def test_sample_transform_and_collate():
    t = TwoViewTransform(16)
    samples = [t({"image": torch.rand(3, 32, 32)}, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    assert set(TWO_VIEW_KEYS) <= set(samples[0])
    expected = two_views(samples[0]["image"], 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples[0]["affine_a_to_b"], expected.affine_a_to_b)
    batch = collate(samples)
    assert batch["view_a"].shape == (2, 3, 16, 16) and batch["affine_a"].shape == (2, 3, 3)
    with pytest.raises(ShapeError, match="'sample'"):
        t(torch.rand(3, 32, 32))


def test_errors_name_the_argument():
    with pytest.raises(ValueRangeError, match=r"'scale\[0\]'"):
        ViewAugmentation(scale=(0.0, 1.0))
    with pytest.raises(ValueRangeError, match="'scale'"):
        ViewAugmentation(scale=(0.8, 0.2))
    with pytest.raises(ValueRangeError, match=r"'scale\[1\]'"):
        ViewAugmentation(scale=(0.5, 1.5))
    with pytest.raises(ValueRangeError, match=r"'rotation\[1\]'"):
        ViewAugmentation(rotation=(0.0, 200.0))
    with pytest.raises(ValueRangeError, match=r"'ratio\[0\]'"):
        ViewAugmentation(ratio=(-1.0, 1.0))
    with pytest.raises(ValueRangeError, match="'hue'"):
        ViewAugmentation(hue=0.7)
    with pytest.raises(ValueRangeError, match="'jitter_p'"):
        ViewAugmentation(jitter_p=1.5)
    with pytest.raises(DTypeError, match="'blur_sigma'"):
        ViewAugmentation(blur_sigma=0.5)
    with pytest.raises(ValueRangeError, match=r"'scale\[0\]'"):
        random_crop_affine((8, 8), (8, 8), scale=(-0.1, 1.0))
    singular = torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueRangeError, match="'affine_b'.*singular"):
        view_to_view_affine(torch.eye(3), singular)
    with pytest.raises(ValueRangeError, match="'affine_a'.*last row"):
        view_to_view_affine(torch.ones(3, 3), torch.eye(3))
    with pytest.raises(ValueRangeError, match="'affine_a'"):
        view_to_view_affine(torch.full((3, 3), float("nan")), torch.eye(3))
    with pytest.raises(ValueRangeError, match="'affine'.*singular"):
        warp_image(torch.rand(3, 8, 8), torch.zeros(3, 3).index_put_((torch.tensor(2), torch.tensor(2)),
                                                                     torch.tensor(1.0)), (8, 8))
    with pytest.raises(ShapeError, match="'affine'"):
        warp_image(torch.rand(3, 8, 8), torch.eye(2), (8, 8))
    with pytest.raises(ShapeError, match="'image'"):
        two_views(torch.rand(1, 8, 8))
    with pytest.raises(ShapeError, match="'augmentations'"):
        two_views(torch.rand(3, 8, 8), augmentations=HANDMIM_VIEWS[:1])
    with pytest.raises(DTypeError, match=r"'augmentations\[1\]'"):
        TwoViewTransform(augmentations=(HANDMIM_VIEWS[0], {"blur_p": 1.0}))
    with pytest.raises(ValueRangeError, match=r"'output_size\[0\]'"):
        two_views(torch.rand(3, 8, 8), (0, 8))
    with pytest.raises(DTypeError, match="'augmentation'"):
        augment_view(torch.rand(3, 8, 8), "strong", (8, 8))
