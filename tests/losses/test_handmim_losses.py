"""HandMIM's losses: L_pose (eqs. 3, 4, 6), L_patch (eq. 7), L_recon (eq. 9) — twins, invariants, errors, overfit."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.losses import (
    align_pseudo_keypoints,
    multilevel_reconstruction_loss,
    normalized_affine,
    patch_distillation_loss,
    pose_alignment_loss,
)
from hoimask.losses.pixel import patchify
from hoimask.nn import PyramidPixelDecoder

VIEW, IMAGE = (16, 16), (40, 40)


def unit(size):
    H, W = size
    return torch.tensor([[2.0 / W, 0, -1], [0, 2.0 / H, -1], [0, 0, 1]], dtype=torch.float64)


def pixel_affine_from_eq3(gamma, angle, shift) -> torch.Tensor:
    """The view -> original pixel map whose normalised form is eq. (4): x = (R⁻¹ x' + (a, b)) / γ."""
    c, s = math.cos(angle), math.sin(angle)
    R_inv = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    A = torch.eye(3, dtype=torch.float64)
    A[:2, :2] = R_inv / gamma
    A[:2, 2] = torch.tensor(shift, dtype=torch.float64) / gamma
    return torch.linalg.inv(unit(IMAGE)) @ A @ unit(VIEW)


def random_affines(batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, 4, generator=g, dtype=torch.float64)
    return torch.stack([pixel_affine_from_eq3(0.5 + float(r[0]), 2 * math.pi * float(r[1]),
                                              (float(r[2]) - 0.5, float(r[3]) - 0.5)) for r in u])


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp(min=1e-300).log()).sum(-1)


# ---------------------------------------------------------------- L_pose


def test_alignment_is_eq4():
    gamma, angle, shift = 0.7, 0.9, (0.2, -0.1)
    A = pixel_affine_from_eq3(gamma, angle, shift)
    tokens = torch.randn(1, 6, dtype=torch.float64)
    out = align_pseudo_keypoints(tokens, A[None], view_size=VIEW, image_size=IMAGE)
    c, s = math.cos(angle), math.sin(angle)
    R_inv = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    points = tokens.view(3, 2)  # "[K/2, 2]": x0, y0, x1, y1, ...
    expected = ((points @ R_inv.T + torch.tensor(shift, dtype=torch.float64)) / gamma).reshape(1, 6)
    torch.testing.assert_close(out, expected)
    # the normalised frame: pixel corner (0, 0) of the view is (-1, -1), the far corner (1, 1)
    N = normalized_affine(torch.eye(3, dtype=torch.float64), (10, 20), (10, 20))
    torch.testing.assert_close(N, torch.eye(3, dtype=torch.float64))
    half = torch.diag(torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64))  # view of the top-left quarter
    torch.testing.assert_close(normalized_affine(half, (8, 8), (16, 16)) @ torch.tensor([1.0, 1.0, 1.0],
                               dtype=torch.float64), torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))


def _naive_pose(s_a, s_b, t_a, t_b, A_a, A_b, center, tau_s, tau_t):
    """Eq. (6) written per sample with eq. (4)'s points."""
    total = 0.0
    for i in range(s_a.shape[0]):
        def align(x, A):
            M = normalized_affine(A, VIEW, IMAGE).to(x.dtype)
            return torch.stack([M[:2, :2] @ p + M[:2, 2] for p in x.view(-1, 2)]).reshape(-1)
        U = torch.softmax((align(t_a[i], A_a[i]) - center) / tau_t, -1)
        V = torch.softmax((align(t_b[i], A_b[i]) - center) / tau_t, -1)
        V_s = torch.log_softmax(align(s_b[i], A_b[i]) / tau_s, -1)
        U_s = torch.log_softmax(align(s_a[i], A_a[i]) / tau_s, -1)
        total = total - (U * V_s).sum() - (V * U_s).sum()
    return total / s_a.shape[0]


def test_pose_loss_equals_the_written_equations():
    g = torch.Generator().manual_seed(0)
    s_a, s_b, t_a, t_b = (torch.randn(3, 8, generator=g, dtype=torch.float64) for _ in range(4))
    A_a, A_b = random_affines(3, 1), random_affines(3, 2)
    center = torch.randn(8, generator=g, dtype=torch.float64) * 0.1
    out = pose_alignment_loss(s_a, s_b, t_a, t_b, A_a, A_b, view_size=VIEW, image_size=IMAGE, center=center,
                              student_temperature=0.1, teacher_temperature=0.04)
    torch.testing.assert_close(out, _naive_pose(s_a, s_b, t_a, t_b, A_a, A_b, center, 0.1, 0.04))


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 1.0))
def test_pose_loss_is_minimal_for_pose_consistent_outputs(seed, scale):
    """Outputs that move with the image (τ_view = Â⁻¹ τ_orig) and match the teacher give the minimum 2·H(p)."""
    tau_s, tau_t = 0.1, 0.05
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(2, 8, generator=g, dtype=torch.float64)  # pseudo key-points in the original image
    A_a, A_b = random_affines(2, seed), random_affines(2, seed + 1)

    def to_view(points, A):  # inverse of the alignment
        M = torch.linalg.inv(normalized_affine(A, VIEW, IMAGE))
        return (points.view(2, -1, 2) @ M[:, :2, :2].transpose(1, 2) + M[:, None, :2, 2]).reshape(2, -1)

    t_a, t_b = to_view(P, A_a), to_view(P, A_b)
    s_a, s_b = to_view(P * tau_s / tau_t, A_a), to_view(P * tau_s / tau_t, A_b)
    kw = dict(view_size=VIEW, image_size=IMAGE, student_temperature=tau_s, teacher_temperature=tau_t)
    best = pose_alignment_loss(s_a, s_b, t_a, t_b, A_a, A_b, **kw)
    torch.testing.assert_close(best, 2 * entropy(torch.softmax(P / tau_t, -1)).mean())
    delta = torch.randn(2, 8, generator=g, dtype=torch.float64) * scale
    assert pose_alignment_loss(s_a + delta, s_b, t_a, t_b, A_a, A_b, **kw) >= best - 1e-12
    assert pose_alignment_loss(s_a, s_b - delta, t_a, t_b, A_a, A_b, **kw) >= best - 1e-12


def test_pose_loss_is_cross_view_and_sends_no_gradient_to_the_teacher():
    g = torch.Generator().manual_seed(0)
    s_a, s_b = (torch.randn(2, 8, generator=g, requires_grad=True) for _ in range(2))
    t_a, t_b = (torch.randn(2, 8, generator=g, requires_grad=True) for _ in range(2))
    eye = torch.eye(3).expand(2, 3, 3)
    kw = dict(view_size=(8, 8), image_size=(8, 8))
    pose_alignment_loss(s_a, s_b, t_a, t_b, eye, eye, **kw).backward()
    assert t_a.grad is None and t_b.grad is None and s_a.grad is not None
    # view b's student is scored against view a's teacher: swapping the teachers swaps the terms
    one = pose_alignment_loss(s_a, s_b, t_a, t_b, eye, eye, **kw)
    swapped = pose_alignment_loss(s_b, s_a, t_b, t_a, eye, eye, **kw)
    torch.testing.assert_close(one, swapped)
    assert not torch.allclose(one, pose_alignment_loss(s_a, s_b, t_b, t_a, eye, eye, **kw))


def test_pose_loss_errors():
    x, eye = torch.randn(2, 8), torch.eye(3).expand(2, 3, 3)
    kw = dict(view_size=(8, 8), image_size=(8, 8))
    with pytest.raises(ShapeError, match="'student_a'.*even"):
        pose_alignment_loss(torch.randn(2, 7), x, x, x, eye, eye, **kw)
    with pytest.raises(ShapeError, match="'teacher_b'"):
        pose_alignment_loss(x, x, x, torch.randn(3, 8), eye, eye, **kw)
    with pytest.raises(ShapeError, match="'affine_b'"):
        pose_alignment_loss(x, x, x, x, eye, torch.eye(3)[:2].expand(2, 2, 3), **kw)
    with pytest.raises(ShapeError, match="'center'"):
        pose_alignment_loss(x, x, x, x, eye, eye, center=torch.zeros(5), **kw)
    with pytest.raises(ValueRangeError, match="'student_temperature'"):
        pose_alignment_loss(x, x, x, x, eye, eye, student_temperature=0.0, **kw)
    with pytest.raises(ValueRangeError, match=r"'image_size\[0\]'"):
        pose_alignment_loss(x, x, x, x, eye, eye, view_size=(8, 8), image_size=(0, 8))


def test_pose_loss_overfits():
    torch.manual_seed(0)
    x_a, x_b = torch.randn(4, 16), torch.randn(4, 16)
    t_a, t_b = torch.randn(4, 32), torch.randn(4, 32)  # sharp targets at τ_t = 0.04
    A_a, A_b = random_affines(4, 5), random_affines(4, 6)
    student = nn.Linear(16, 32)
    opt = torch.optim.Adam(student.parameters(), lr=3e-2)
    kw = dict(view_size=VIEW, image_size=IMAGE, teacher_temperature=0.04)
    first = None
    for _ in range(300):
        loss = pose_alignment_loss(student(x_a), student(x_b), t_a, t_b, A_a, A_b, **kw)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())


# ---------------------------------------------------------------- L_patch


def _naive_patch(student, teacher, mask, center, tau_s, tau_t):
    """iBOT's MIM loss, a loop over views."""
    per_view = []
    for v in range(student.shape[0]):
        p = torch.softmax((teacher[v] - center) / tau_t, -1)
        ce = -(p * torch.log_softmax(student[v] / tau_s, -1)).sum(-1)  # (B, N)
        m = mask[v].to(ce.dtype)
        per_view.append(((ce * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean())
    return sum(per_view) / len(per_view)


def test_patch_loss_equals_ibot():
    g = torch.Generator().manual_seed(0)
    student, teacher = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64) for _ in range(2))
    mask = torch.rand(2, 3, 5, generator=g) < 0.5
    mask[0, 1] = False  # a sample with nothing masked counts 0
    center = torch.randn(1, 8, generator=g, dtype=torch.float64)
    out = patch_distillation_loss(student, teacher, mask, center=center, teacher_temperature=0.04)
    torch.testing.assert_close(out, _naive_patch(student, teacher, mask, center.view(-1), 0.1, 0.04))
    # one view without the view dimension
    torch.testing.assert_close(patch_distillation_loss(student[0], teacher[0], mask[0], center=center,
                                                       teacher_temperature=0.04),
                               _naive_patch(student[:1], teacher[:1], mask[:1], center.view(-1), 0.1, 0.04))


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 2.0))
def test_patch_loss_is_minimal_when_the_student_matches_the_targets(seed, scale):
    g = torch.Generator().manual_seed(seed)
    tau_s, tau_t = 0.1, 0.07
    teacher = torch.randn(2, 2, 6, 8, generator=g, dtype=torch.float64)
    center = torch.randn(8, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 2, 6, generator=g) < 0.5
    mask[..., 0] = True
    student = (teacher - center) * tau_s / tau_t  # softmax(student / τ_s) == the target
    kw = dict(center=center, student_temperature=tau_s, teacher_temperature=tau_t)
    best = patch_distillation_loss(student, teacher, mask, **kw)
    target = torch.softmax((teacher - center) / tau_t, -1)
    m = mask.double()
    torch.testing.assert_close(best, ((entropy(target) * m).sum(-1) / m.sum(-1)).mean())
    delta = torch.randn(student.shape, generator=g, dtype=torch.float64) * scale
    assert patch_distillation_loss(student + delta, teacher, mask, **kw) >= best - 1e-12
    # visible patches do not count
    visible = delta * (~mask)[..., None]
    torch.testing.assert_close(patch_distillation_loss(student + visible, teacher, mask, **kw), best)


def test_patch_loss_nothing_masked_and_no_teacher_gradient():
    student = torch.randn(2, 4, 8, requires_grad=True)
    teacher = torch.randn(2, 4, 8, requires_grad=True)
    loss = patch_distillation_loss(student, teacher, torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert student.grad is not None and float(student.grad.abs().sum()) == 0.0 and teacher.grad is None


def test_patch_loss_errors():
    x, mask = torch.randn(2, 3, 4, 8), torch.ones(2, 3, 4, dtype=torch.bool)
    with pytest.raises(ShapeError, match="'teacher'"):
        patch_distillation_loss(x, torch.randn(2, 3, 4, 9), mask)
    with pytest.raises(ShapeError, match="'teacher'"):
        patch_distillation_loss(x, torch.randn(1, 3, 4, 8), mask)  # views of a different count
    with pytest.raises(ShapeError, match="'mask'"):
        patch_distillation_loss(x, x, torch.ones(2, 3, 5, dtype=torch.bool))
    with pytest.raises(DTypeError, match="'mask'"):
        patch_distillation_loss(x, x, torch.ones(2, 3, 4))
    with pytest.raises(ValueRangeError, match="'teacher_temperature'"):
        patch_distillation_loss(x, x, mask, teacher_temperature=-1.0)


def test_patch_loss_overfits():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 6, 16)  # (views, batch, tokens, D)
    teacher = torch.randn(2, 3, 6, 32)
    mask = torch.rand(2, 3, 6) < 0.6
    mask[..., 0] = True
    student = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 32))
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss = patch_distillation_loss(student(features), teacher, mask, teacher_temperature=0.04)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())


# ---------------------------------------------------------------- L_recon


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), p=st.floats(0.05, 1.0))
def test_reconstruction_counts_masked_patches_only(seed, p):
    g = torch.Generator().manual_seed(seed)
    pred, image = (torch.randn(2, 3, 8, 12, generator=g, dtype=torch.float64) for _ in range(2))
    mask = torch.rand(2, 6, generator=g) < p
    mask[0, 0] = True
    loss = multilevel_reconstruction_loss(pred, image, mask, 4)
    err = patchify((pred - image).abs(), 4)  # (B, N, P*P*C)
    torch.testing.assert_close(loss, err[mask].mean())
    noise = torch.randn(2, 3, 8, 12, generator=g, dtype=torch.float64)
    pixel_mask = mask.view(2, 1, 2, 1, 3, 1).expand(2, 3, 2, 4, 3, 4).reshape(2, 3, 8, 12)
    torch.testing.assert_close(multilevel_reconstruction_loss(pred + noise * ~pixel_mask, image, mask, 4), loss)


def test_reconstruction_nothing_masked_and_errors():
    pred = torch.randn(1, 3, 8, 8, requires_grad=True)
    loss = multilevel_reconstruction_loss(pred, torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, dtype=torch.bool), 4)
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None
    image, mask = torch.zeros(1, 3, 8, 8), torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ShapeError, match="'mask'"):
        multilevel_reconstruction_loss(pred, image, torch.ones(1, 16, dtype=torch.bool), 4)
    with pytest.raises(DTypeError, match="'mask'"):
        multilevel_reconstruction_loss(pred, image, torch.ones(1, 4), 4)
    with pytest.raises(ShapeError, match="patch_size"):
        multilevel_reconstruction_loss(pred, image, mask, 3)
    with pytest.raises(ShapeError, match="'image'"):
        multilevel_reconstruction_loss(pred, torch.zeros(1, 3, 8, 4), mask, 4)
    with pytest.raises(ValueRangeError, match="'patch_size'"):
        multilevel_reconstruction_loss(pred, image, mask, 0)


def test_reconstruction_overfits_with_the_pyramid_decoder():
    torch.manual_seed(0)
    grid, P, D = (3, 3), 8, 16
    taps = [torch.randn(2, 9, D) for _ in range(4)]
    v, u = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    image = torch.stack([torch.sin(3 * u + 1), torch.cos(2 * v), u * v]).expand(2, 3, 24, 24)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, ::2] = True
    decoder = PyramidPixelDecoder(D, patch_size=P, channels=(32, 32, 32, 32))
    opt = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    first = None
    for _ in range(400):
        loss = multilevel_reconstruction_loss(decoder(taps, grid), image, mask, P)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())
