"""KeypointFeedbackRegressor: HandMIM's PyMAF-style keypoint feedback loop (HandMIM §2.5)."""

import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import matrix_to_rotation_6d, project, rotation_6d_to_matrix
from hoimask.hand import ProceduralHand
from hoimask.nn import HandEstimate, KeypointFeedbackRegressor, feedback_map_scales

D = 16
GRID = (4, 4)  # 16-pixel patches of a 64-pixel image
SIZE = (64, 64)


def _head(**kw) -> KeypointFeedbackRegressor:
    torch.manual_seed(0)
    return KeypointFeedbackRegressor(D, ProceduralHand(), **{"channels": 8, "hidden": 32, **kw})


def _inputs(B=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(B, GRID[0] * GRID[1], D, generator=g, dtype=dtype)
    K = torch.tensor([[80.0, 0, 30], [0, 80.0, 34], [0, 0, 1]], dtype=dtype).expand(B, 3, 3)
    return tokens, K


def test_map_scales_double_up_to_the_cap():
    assert feedback_map_scales(3) == (2, 4, 4)  # strides 8, 4, 4 for 16-pixel patches
    assert feedback_map_scales(2, 8) == (2, 4)
    assert feedback_map_scales(5, 8) == (2, 4, 8, 8, 8)
    assert feedback_map_scales(2, 1) == (1, 1)
    with pytest.raises(ValueRangeError, match="'max_upsample'.*power of two"):
        feedback_map_scales(3, 3)
    with pytest.raises(ValueRangeError, match="'iterations'"):
        feedback_map_scales(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_estimate_has_its_shapes_and_a_consistent_hand(dtype):
    head = _head(iterations=3).to(dtype)
    tokens, K = _inputs(dtype=dtype)
    estimates = head(tokens, GRID, K, SIZE)
    assert len(estimates) == 4 and all(isinstance(e, HandEstimate) for e in estimates)
    V = ProceduralHand()(torch.zeros(1, 16, 3), torch.zeros(1, 10)).vertices.shape[1]
    for e in estimates:
        assert e.rotation_6d.shape == (2, 16, 6) and e.shape.shape == (2, 10)
        assert e.translation.shape == e.translation_raw.shape == (2, 3)
        assert e.joints.shape == (2, 21, 3) and e.vertices.shape == (2, V, 3) and e.keypoints_2d.shape == (2, 21, 2)
        assert all(t.dtype == dtype for t in e)
        torch.testing.assert_close(e.joints[:, 0], e.translation)  # the wrist hangs at t
        torch.testing.assert_close(e.keypoints_2d, project(e.joints, K))  # eq. (12): K(J_3D + t)
        assert (e.joints[..., 2] > 0).all()
    maps = head.feature_maps(tokens, GRID)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 8, 8), (2, 8, 16, 16), (2, 8, 16, 16)]


def test_initial_estimate_is_identity_rotations_zero_shape_and_rectifiers_start_as_identity():
    head = _head()
    tokens, K = _inputs()
    estimates = head(tokens, GRID, K, SIZE)
    first = estimates[0]
    identity = matrix_to_rotation_6d(torch.eye(3)).expand(2, 16, 6)
    torch.testing.assert_close(first.rotation_6d, identity, atol=0.05, rtol=0)
    assert first.shape.abs().max() < 0.05
    # the camera-aware wrist: near the image centre at the reference depth scaled by focal / side (80 / 64)
    torch.testing.assert_close(first.translation[:, 2], torch.full((2,), 0.5 * 80 / 64), atol=0.05, rtol=0)
    for later in estimates[1:]:  # the updates' last layers start small: every rectifier starts near the identity
        assert (later.rotation_6d - first.rotation_6d).abs().max() < 0.05
        assert (later.joints - first.joints).abs().max() < 0.02


def test_rectifier_reads_the_feature_map_only_at_the_projected_joints():
    """Estimate k + 1 sees map k only through bilinear samples at estimate k's projected joints."""
    head = _head().train()
    tokens, K = _inputs()
    captured = {}
    head.stages[0].register_forward_hook(lambda module, args, out: captured.setdefault("map", out))
    estimates = head(tokens, GRID, K, SIZE)
    fmap = captured["map"]  # (B, C, 8, 8): stride 8
    (grad,) = torch.autograd.grad(estimates[1].rotation_6d.sum() + estimates[1].shape.sum(), fmap)
    touched = grad.abs().sum(1) > 0  # (B, 8, 8)
    xy = estimates[0].keypoints_2d.detach() / 8 - 0.5  # (B, 21, 2) in map cells (centre convention)
    cols, rows = torch.arange(8.0), torch.arange(8.0)
    near = ((cols[None, None, None, :] - xy[..., 0, None, None]).abs() < 1) \
        & ((rows[None, None, :, None] - xy[..., 1, None, None]).abs() < 1)  # (B, 21, 8, 8): bilinear neighbours
    assert touched.any()
    assert not (touched & ~near.any(1)).any(), "a map cell far from every projected joint reached the estimate"


def test_gradients_reach_the_tokens_from_every_estimate_and_the_fed_back_estimate_is_detached():
    head = _head()
    tokens, K = _inputs()
    tokens.requires_grad_(True)
    estimates = head(tokens, GRID, K, SIZE)
    for e in estimates:
        (grad,) = torch.autograd.grad(e.joints.sum(), tokens, retain_graph=True)
        assert grad.abs().sum() > 0
    # PyMAF detaches the estimate it feeds back: the final estimate does not train the initial head
    head.zero_grad()
    estimates[-1].joints.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in head.init_params.parameters())
    assert head.updates[-1][-1].weight.grad.abs().sum() > 0
    assert head.stages[0][0].weight.grad.abs().sum() > 0  # the pyramid (and so the encoder) is trained


def test_works_with_a_mano_layer(tmp_path):
    from hoimask.hand import MANOLayer
    from hoimask.hand.testing import write_synthetic_mano

    torch.manual_seed(0)
    head = KeypointFeedbackRegressor(D, MANOLayer(write_synthetic_mano(tmp_path / "MANO_RIGHT.pkl")), channels=8,
                                     hidden=32, iterations=2)
    tokens, K = _inputs()
    estimates = head(tokens, GRID, K, SIZE)
    assert len(estimates) == 3 and estimates[-1].vertices.shape == (2, 778, 3)


def test_bad_arguments_raise_typed_errors_naming_them():
    hand = ProceduralHand()
    with pytest.raises(DTypeError, match="'hand_layer'"):
        KeypointFeedbackRegressor(D, lambda *a: None)
    with pytest.raises(ValueRangeError, match="'iterations'"):
        KeypointFeedbackRegressor(D, hand, iterations=0)
    with pytest.raises(DTypeError, match="'channels'"):
        KeypointFeedbackRegressor(D, hand, channels=8.0)
    with pytest.raises(ValueRangeError, match="'max_upsample'"):
        KeypointFeedbackRegressor(D, hand, max_upsample=6)
    with pytest.raises(ValueRangeError, match="'reference_depth'"):
        KeypointFeedbackRegressor(D, hand, reference_depth=0.0)
    with pytest.raises(ValueRangeError, match="'dim'"):
        KeypointFeedbackRegressor(0, hand)
    head = _head()
    tokens, K = _inputs()
    with pytest.raises(ShapeError, match="'tokens'"):
        head(tokens[..., :-1], GRID, K, SIZE)
    with pytest.raises(ShapeError, match="'tokens'"):
        head(tokens, (4, 5), K, SIZE)  # the grid does not hold the tokens
    with pytest.raises(ShapeError, match="'K'"):
        head(tokens, GRID, K[:1], SIZE)
    with pytest.raises(DTypeError, match=r"'image_size\[0\]'"):
        head(tokens, GRID, K, (64.0, 64))
    with pytest.raises(DTypeError, match="'grid_size'"):
        head(tokens, 4, K, SIZE)


def test_rotation_output_is_a_valid_6d():
    head = _head()
    tokens, K = _inputs()
    R = rotation_6d_to_matrix(head(tokens, GRID, K, SIZE)[-1].rotation_6d)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)


def test_outputs_follow_the_inputs_device(device):
    head = _head().to(device)
    tokens, K = _inputs()
    estimates = head(tokens.to(device), GRID, K.to(device), SIZE)
    assert all(t.device.type == device.type for e in estimates for t in e)
