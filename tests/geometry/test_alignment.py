import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError
from hoimask.geometry import (
    axis_angle_to_matrix,
    procrustes_align,
    scale_translation_align,
    similarity_procrustes,
)

seeds = st.integers(0, 2**31 - 1)


def random_similarity(seed, B=4, N=21):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=torch.float64))
    s = 0.2 + 3 * torch.rand(B, generator=g, dtype=torch.float64)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64)
    y = s[:, None, None] * x @ R.transpose(1, 2) + t[:, None]
    return x, y, s, R, t


@given(seed=seeds, allow=st.booleans())
def test_recovers_known_similarity_exactly(seed, allow):
    x, y, s, R, t = random_similarity(seed)
    s2, R2, t2 = similarity_procrustes(x, y, allow_reflection=allow)
    torch.testing.assert_close(s2, s, atol=1e-9, rtol=0)
    torch.testing.assert_close(R2, R, atol=1e-9, rtol=0)
    torch.testing.assert_close(t2, t, atol=1e-9, rtol=0)
    torch.testing.assert_close(procrustes_align(x, y, allow_reflection=allow), y, atol=1e-9, rtol=0)


@given(seed=seeds)
def test_reflection_behaviour(seed):
    x, y, *_ = random_similarity(seed)
    mirrored = y * torch.tensor([-1.0, 1.0, 1.0], dtype=y.dtype)
    _, R_free, _ = similarity_procrustes(x, mirrored, allow_reflection=True)
    _, R_proper, _ = similarity_procrustes(x, mirrored, allow_reflection=False)
    torch.testing.assert_close(torch.linalg.det(R_free), -torch.ones(4, dtype=x.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R_proper), torch.ones(4, dtype=x.dtype), atol=1e-9, rtol=0)
    # With the reflection allowed, a mirrored target is matched exactly; without, it is not.
    err_free = (procrustes_align(x, mirrored, allow_reflection=True) - mirrored).norm(dim=-1).mean()
    err_proper = (procrustes_align(x, mirrored, allow_reflection=False) - mirrored).norm(dim=-1).mean()
    assert err_free < 1e-9 < err_proper


def test_matches_scipy_orthogonal_procrustes():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(1, 21, 3, generator=g, dtype=torch.float64), torch.randn(1, 21, 3, generator=g, dtype=torch.float64)
    # HO3D/FreiHAND align_w_scale: normalise both, scipy orthogonal_procrustes, rescale.
    A = a[0] - a[0].mean(0)
    Bm = b[0] - b[0].mean(0)
    sa, sb = A.norm(), Bm.norm()
    R, s = scipy_linalg.orthogonal_procrustes(A.numpy() / sa.item(), Bm.numpy() / sb.item())
    ref = torch.from_numpy(A.numpy() / sa.item() @ R.T.T) * s * sb + b[0].mean(0)
    ours = procrustes_align(a, b, allow_reflection=True)[0]
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


def test_scale_translation_align():
    x, _, _, _, _ = random_similarity(0)
    y = 2.5 * x + torch.tensor([0.1, -0.3, 1.0], dtype=x.dtype)
    aligned, s, t = scale_translation_align(x, y)
    torch.testing.assert_close(aligned, y)
    torch.testing.assert_close(s, torch.full((4,), 2.5, dtype=x.dtype))


def test_degenerate_source_gives_centroid():
    x = torch.zeros(1, 5, 3, dtype=torch.float64)
    y = torch.randn(1, 5, 3, dtype=torch.float64)
    out = procrustes_align(x, y, allow_reflection=False)
    torch.testing.assert_close(out, y.mean(1, keepdim=True).expand_as(y))


def test_bad_inputs():
    x = torch.zeros(2, 5, 3)
    with pytest.raises(ShapeError, match="'target'"):
        similarity_procrustes(x, torch.zeros(2, 4, 3), allow_reflection=False)
    with pytest.raises(DTypeError, match="allow_reflection"):
        similarity_procrustes(x, x, allow_reflection=1)
    with pytest.raises(TypeError):
        similarity_procrustes(x, x)  # the flag is required
