"""posed_model_sdf: one tree in the model frame answers for every pose (and mirror)."""

from __future__ import annotations

import pytest
import torch

from hoimask.data import posed_model_sdf
from hoimask.geometry import axis_angle_to_matrix
from hoimask.ops import MeshBVH, mesh_sdf
from hoimask.ops.mesh_sdf import bvh_enabled
from hoimask.sdf import icosphere

pytestmark = pytest.mark.skipif(not bvh_enabled(torch.device("cpu")), reason="needs numba (the 'fast' extra)")


@pytest.mark.parametrize("mirrored", [False, True])
def test_posed_model_sdf_equals_mesh_sdf_on_the_posed_model(mirrored):
    v, f = icosphere(3, 0.05)
    v = v * torch.tensor([1.0, 0.5, 0.8], dtype=v.dtype) + torch.tensor([0.01, 0.0, 0.0], dtype=v.dtype)
    R = axis_angle_to_matrix(torch.tensor([0.3, -0.8, 0.2], dtype=torch.float64))
    t = torch.tensor([0.05, -0.02, 0.6], dtype=torch.float64)
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)) if mirrored else None
    model, faces = (v @ M, f.flip(-1)) if mirrored else (v, f)  # how DexYCB mirrors a left-hand frame
    posed = model @ R.T + t
    g = torch.Generator().manual_seed(0)
    p = (t + 0.08 * torch.randn(400, 3, generator=g, dtype=torch.float64)).float()
    got = posed_model_sdf(MeshBVH(v, f), R, t, M)(p)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, mesh_sdf(p[None].double(), posed[None], faces)[0].float(), atol=1e-7, rtol=0)


def test_bad_poses_raise_typed_errors():
    from hoimask._checks import ShapeError, ValueRangeError

    tree = MeshBVH(*icosphere(1))
    t = torch.zeros(3)
    with pytest.raises(ValueRangeError, match="'rotation'"):
        posed_model_sdf(tree, 2 * torch.eye(3), t)
    with pytest.raises(ValueRangeError, match="'rotation'"):
        posed_model_sdf(tree, torch.diag(torch.tensor([-1.0, 1.0, 1.0])), t)  # a reflection
    with pytest.raises(ShapeError, match="'translation'"):
        posed_model_sdf(tree, torch.eye(3), torch.zeros(1, 3))
    with pytest.raises(ValueRangeError, match="'translation'"):
        posed_model_sdf(tree, torch.eye(3), torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueRangeError, match="'mirror'"):
        posed_model_sdf(tree, torch.eye(3), t, torch.eye(3) * 0.5)
    assert posed_model_sdf(tree, torch.eye(3), t)(torch.zeros(0, 3)).shape == (0,)
