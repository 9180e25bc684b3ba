"""The Triton search of hoimask::mesh_sdf against the pure-torch reference.

On CPU the kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``),
which must be set before the kernel is decorated, hence a fresh subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

_SCRIPT = textwrap.dedent(
    """
    import torch
    from hoimask.ops.mesh_sdf import kernel
    from hoimask.ops.mesh_sdf.reference import finish_from_search, triangle_search
    from hoimask.sdf import icosphere, open_mesh, torus_mesh

    torch.manual_seed(0)
    cases = []
    v, f = torus_mesh(1.0, 0.3, 10, 6)                 # 120 triangles: several tiles, a partial last one
    cases.append((v, f))
    v, f = icosphere(1)
    cases.append(open_mesh(v, f, torch.tensor([0.0, 0.0, 1.0]), 0.8))  # open mesh
    for dtype in (torch.float32, torch.float64):
        for v, f in cases:
            verts = torch.stack([v, v * 0.7 + 0.1]).to(dtype)
            p = (torch.rand(2, 70, 3, dtype=torch.float64) * 3 - 1.5).to(dtype)   # Q not a multiple of BLOCK_Q
            p[:, :35] = verts[:, :35].to(dtype) * 1.05 + 0.01                    # half the points near the surface
            i_t, w_t = kernel.mesh_sdf_search_triton(p, verts, f, block_q=32, block_t=16)
            i_r, w_r = triangle_search(p, verts, f)
            assert i_t.dtype == torch.int64 and w_t.dtype == dtype
            assert torch.allclose(w_t, w_r, atol=1e-4), (w_t - w_r).abs().max()
            s_t, _ = finish_from_search(p, verts, f, i_t, lambda mask: w_t)
            s_r, _ = finish_from_search(p, verts, f, i_r, lambda mask: w_r)
            # Ties between triangles sharing the closest vertex/edge may pick another index, same distance.
            tol = 1e-12 if dtype == torch.float64 else 2e-6
            assert torch.allclose(s_t, s_r, atol=tol, rtol=0), (s_t - s_r).abs().max()
            # Distance-only sweep with tile culling (the op's CUDA path): same distances.
            i_c, none = kernel.mesh_sdf_search_triton(p, verts, f, with_winding=False, block_q=16, block_t=16)
            assert none is None
            s_c, _ = finish_from_search(p, verts, f, i_c, lambda mask: w_r)
            assert torch.allclose(s_c, s_r, atol=tol, rtol=0), (s_c - s_r).abs().max()
    print("TRITON_INTERPRET_OK")
    """
)


@pytest.mark.slow
def test_triton_launcher_matches_reference_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "TRITON_INTERPRET_OK" in res.stdout


def test_disable_env_turns_triton_off(monkeypatch):
    from hoimask.ops.mesh_sdf import kernel, triton_enabled

    monkeypatch.setenv("HOIMASK_DISABLE_TRITON", "1")
    assert not triton_enabled(torch.device("cuda"))
    monkeypatch.setenv("HOIMASK_DISABLE_TRITON", "0")
    assert triton_enabled(torch.device("cuda")) == kernel.TRITON_AVAILABLE
    assert not triton_enabled(torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_on_cuda_matches_reference(dtype, monkeypatch):
    from hoimask.ops import mesh_sdf, mesh_sdf_reference
    from hoimask.sdf import torus_mesh

    monkeypatch.delenv("HOIMASK_DISABLE_TRITON", raising=False)
    v, f = torus_mesh(1.0, 0.3, 40, 20)
    p = torch.rand(2, 5000, 3, dtype=dtype, device="cuda") * 3 - 1.5
    verts = torch.stack([v, v * 0.8]).to(dtype=dtype, device="cuda")
    f = f.cuda()
    tol = 1e-10 if dtype == torch.float64 else 2e-6
    assert torch.allclose(mesh_sdf(p, verts, f), mesh_sdf_reference(p, verts, f), atol=tol, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_winding_on_cuda_matches_reference():
    from hoimask.ops.mesh_sdf import kernel
    from hoimask.ops.mesh_sdf.reference import triangle_search
    from hoimask.sdf import icosphere, open_mesh

    v, f = open_mesh(*icosphere(3), torch.tensor([0.0, 0.0, 1.0]), 0.9)
    p = torch.rand(1, 3000, 3, dtype=torch.float64, device="cuda") * 3 - 1.5
    verts, f = v[None].cuda(), f.cuda()
    _, w_t = kernel.mesh_sdf_search_triton(p, verts, f, with_winding=True)
    _, w_r = triangle_search(p, verts, f)
    assert torch.allclose(w_t, w_r, atol=1e-6)


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                             reason="needs a CUDA device")])],
)
def test_op_gradients_and_signs_match_the_reference(device, monkeypatch):
    """Issue 17 item 6's check on the GPU (the Triton search; on CPU the same check runs the BVH or torch path):
    values, inside/outside and the gradients w.r.t. points and vertices equal the float64 reference's autograd."""
    from hoimask.ops import mesh_sdf, mesh_sdf_reference
    from hoimask.sdf import torus_mesh

    monkeypatch.delenv("HOIMASK_DISABLE_TRITON", raising=False)
    v, f = torus_mesh(1.0, 0.3, 40, 20)
    g = torch.Generator().manual_seed(0)
    p = torch.rand(1, 2000, 3, generator=g, dtype=torch.float64) * 3 - 1.5
    p_op, v_op = p.clone().to(device).requires_grad_(), v[None].clone().to(device).requires_grad_()
    sdf = mesh_sdf(p_op, v_op, f.to(device))
    sdf.sum().backward()
    p_ref, v_ref = p.clone().requires_grad_(), v[None].clone().requires_grad_()
    ref = mesh_sdf_reference(p_ref, v_ref, f)
    ref.sum().backward()
    torch.testing.assert_close(sdf.detach().cpu(), ref.detach(), atol=1e-10, rtol=0)
    assert torch.equal(sdf.detach().cpu() < 0, ref.detach() < 0)
    torch.testing.assert_close(p_op.grad.cpu(), p_ref.grad, atol=1e-8, rtol=0)
    torch.testing.assert_close(v_op.grad.cpu(), v_ref.grad, atol=1e-8, rtol=0)

