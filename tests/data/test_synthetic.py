"""SyntheticHOI: reproducibility and mutually consistent labels."""

from __future__ import annotations

import pickle

import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.data import SyntheticHOI, collate, validate_sample
from hoimask.data.scene import render_scene, sample_scene
from hoimask.geometry import project
from hoimask.ops import mesh_sdf


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(torch.nan_to_num(a, nan=-7.0), torch.nan_to_num(b, nan=-7.0))


def test_same_index_is_bit_identical_and_indices_differ(small_synthetic, synthetic_samples):
    again = small_synthetic[4]
    first = synthetic_samples[4]
    assert set(again) == set(first)
    assert all(_equal(again[k], first[k]) for k in first)
    fresh = SyntheticHOI(num_samples=50, image_size=64, seed=3, num_sdf_points=512, num_object_points=256, deoccluded=True)
    assert all(_equal(fresh[4][k], first[k]) for k in first)  # another instance (another "worker")
    assert not torch.equal(synthetic_samples[5]["image"], first["image"])
    other_seed = SyntheticHOI(num_samples=50, image_size=64, seed=4, num_sdf_points=512, num_object_points=256)
    assert not torch.equal(other_seed[4]["image"], first["image"])


def test_pickle_roundtrip_gives_the_same_samples(small_synthetic, synthetic_samples):
    clone = pickle.loads(pickle.dumps(small_synthetic))
    assert clone._hand is None or clone is not small_synthetic
    s = clone[2]
    assert all(_equal(s[k], synthetic_samples[2][k]) for k in s)


def test_samples_follow_the_contract(synthetic_samples):
    for s in synthetic_samples:
        validate_sample(s)
        assert s["deoccluded_image"].shape == s["image"].shape
    batch = collate(synthetic_samples)
    assert batch["sdf_points"].shape == (12, 512, 3)


def test_scene_mix_contains_grasps_and_hand_only(small_synthetic):
    kinds = []
    for i in range(50):
        g = torch.Generator().manual_seed(1000 + i)
        scene = sample_scene(small_synthetic.hand, (32, 32), generator=g, hand_only_prob=0.2, not_grasped_prob=0.2)
        kinds.append("none" if scene.obj is None else "grasp" if scene.grasped else "apart")
    assert {"none", "grasp", "apart"} <= set(kinds)


def test_segmentation_masks_and_occlusion_ratio_agree(synthetic_samples):
    for s in synthetic_samples:
        hand = s["segmentation"] == 1
        assert not (hand & ~s["amodal_hand_mask"]).any()  # visible hand ⊆ amodal
        amodal = int(s["amodal_hand_mask"].sum())
        expected = 1 - int(hand.sum()) / amodal
        assert abs(float(s["occlusion_ratio"]) - expected) < 1e-6
        assert ((s["depth"] > 0) == (s["segmentation"] > 0)).all()  # depth 0 exactly on the background
        if not bool(s["has_object"]):
            assert (s["segmentation"] != 2).all()
            assert torch.isnan(s["sdf_object"]).all() and not bool(s["grasped"])
        else:
            assert torch.isfinite(s["sdf_object"]).all()


def test_projected_joints_land_on_hand_pixels(synthetic_samples):
    on_amodal, visible_ok, visible_total = 0, 0, 0
    total = 0
    for s in synthetic_samples:
        uv = s["joints_2d"]
        assert torch.allclose(project(s["joints_3d"].double(), s["K"].double()).float(), uv, atol=1e-3)
        H, W = s["segmentation"].shape
        cols, rows = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
        for c, r in zip(cols[inside].tolist(), rows[inside].tolist()):
            total += 1
            on_amodal += bool(s["amodal_hand_mask"][r, c])
            if s["segmentation"][r, c] != 2:  # not hidden by the object
                visible_total += 1
                visible_ok += bool(s["segmentation"][r, c] == 1)
    assert total > 100
    assert on_amodal / total > 0.97  # joints are inside the hand solid
    assert visible_ok / visible_total > 0.97


def test_object_pose_maps_model_points_onto_object_pixels(synthetic_samples):
    hits, total = 0, 0
    for s in synthetic_samples:
        if not bool(s["has_object"]):
            continue
        cam = s["object_points"] @ s["object_rotation"].T + s["object_translation"]
        uv = project(cam, s["K"])
        cols, rows = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        H, W = s["segmentation"].shape
        inside = (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
        # The object's silhouette, or the hand in front of it, with 1 px tolerance at the outline.
        fg = ((s["segmentation"] == 2) | (s["segmentation"] == 1)).float()[None, None]
        fg = torch.nn.functional.max_pool2d(fg, 3, stride=1, padding=1)[0, 0] > 0
        hits += int(fg[rows[inside], cols[inside]].sum())
        total += int(inside.sum())
        assert torch.allclose(s["object_rotation"] @ s["object_rotation"].T, torch.eye(3), atol=1e-5)
    assert total > 0 and hits / total > 0.995


def test_sdf_hand_agrees_with_mesh_sdf_on_the_hand_mesh(small_synthetic):
    g = torch.Generator().manual_seed(7)
    scene = sample_scene(small_synthetic.hand, (32, 32), generator=g)
    pts = scene.vertices.mean(0) + 0.06 * torch.randn(400, 3, generator=g)
    analytic = scene.hand_sdf(pts)
    exact = mesh_sdf(pts[None], scene.vertices[None], small_synthetic.hand.faces)[0]
    outside = analytic > 0.002  # overlapping capsules leave inner faces in the mesh: compare outside
    assert outside.sum() > 100
    assert (analytic[outside] - exact[outside]).abs().max() < 1.5e-3
    assert ((exact < 0) == (analytic < 0)).float().mean() > 0.97


def test_grasped_objects_touch_the_hand(synthetic_samples, small_synthetic):
    for i, s in enumerate(synthetic_samples):
        if not bool(s["grasped"]):
            continue
        cam = s["object_points"] @ s["object_rotation"].T + s["object_translation"]
        # The analytic hand SDF at the object surface: contact, and at most a few mm of
        # penetration (placement checks 256 surface samples, P other points fall between them).
        scene_sdf = _scene_sdf(small_synthetic, i)
        d = scene_sdf(cam)
        assert -0.008 < d.min() < 0.006


def _scene_sdf(ds, index):
    from hoimask.data.cache import _index_seed

    g = torch.Generator().manual_seed(_index_seed(ds.seed, index))
    scene = sample_scene(ds.hand, ds.image_size, generator=g)
    return scene.hand_sdf


def test_deoccluded_image_matches_outside_the_object(synthetic_samples):
    for s in synthetic_samples:
        keep = s["segmentation"] != 2
        assert torch.equal(s["deoccluded_image"][:, keep], s["image"][:, keep])
        if (s["segmentation"] == 2).any():
            assert not torch.equal(s["deoccluded_image"], s["image"])


def test_coarse_culling_does_not_change_the_picture(small_synthetic):
    for i in range(6):
        scene = sample_scene(small_synthetic.hand, (40, 56), generator=torch.Generator().manual_seed(50 + i))
        a, b = render_scene(scene), render_scene(scene, coarse_culling=False)
        assert torch.equal(a.image, b.image) and torch.equal(a.amodal_hand_mask, b.amodal_hand_mask)


def test_user_mesh_objects(small_synthetic):
    from hoimask.sdf.meshes import box_mesh

    v, f = box_mesh((0.02, 0.03, 0.025), dtype=torch.float32)
    ds = SyntheticHOI(num_samples=4, image_size=40, seed=1, num_sdf_points=64, num_object_points=32,
                      object_mesh=(v, f), hand_only_prob=0.0, not_grasped_prob=0.0)  # fmt: skip
    s = ds[0]
    validate_sample(s)
    assert (s["segmentation"] == 2).any() and bool(s["grasped"])
    # Model points of a mesh object lie on the mesh.
    d = mesh_sdf(s["object_points"][None].double(), v[None].double(), f)[0]
    assert d.abs().max() < 1e-5


def test_bad_arguments():
    with pytest.raises(ValueRangeError, match="num_samples"):
        SyntheticHOI(num_samples=0)
    with pytest.raises(ValueRangeError, match="hand_only_prob"):
        SyntheticHOI(hand_only_prob=1.5)
    ds = SyntheticHOI(num_samples=3, image_size=32)
    with pytest.raises(IndexError):
        ds[3]


def test_dataloader_workers_reproduce_the_samples():
    from torch.utils.data import DataLoader

    ds = SyntheticHOI(num_samples=4, image_size=32, seed=11, num_sdf_points=32, num_object_points=16)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    direct = collate([ds[i] for i in range(4)])
    assert torch.equal(torch.cat([b["image"] for b in batches]), direct["image"])
    assert torch.equal(torch.cat([b["joints_3d"] for b in batches]), direct["joints_3d"])


def test_view_range_keeps_the_palm_towards_the_camera_and_leaves_the_default_alone():
    from hoimask.geometry import axis_angle_to_matrix

    kw = dict(num_samples=6, image_size=32, num_sdf_points=0, num_object_points=8, hand_only_prob=1.0,
              not_grasped_prob=0.0)
    plain, viewed = SyntheticHOI(**kw), SyntheticHOI(**kw, view_range=20.0)
    assert "view_range" not in plain.config() and viewed.config()["view_range"] == 20.0
    for i in range(6):
        R = axis_angle_to_matrix(viewed[i]["hand_pose"][0].double())
        palm_normal = R @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)  # hand frame: palm normal -y
        assert palm_normal[2] < -0.9  # within 20 degrees of facing the camera (camera looks along +z)
    # the draws before the orientation are unchanged: same shape and finger pose, another global rotation
    a, b = plain[2], viewed[2]
    assert torch.equal(a["hand_shape"], b["hand_shape"]) and torch.equal(a["hand_pose"][1:], b["hand_pose"][1:])
    assert not torch.equal(a["hand_pose"][0], b["hand_pose"][0])
    with pytest.raises(ValueRangeError, match="view_range"):
        SyntheticHOI(**kw, view_range=200.0)


def test_occlusion_range_redraws_deterministically_until_the_hand_is_occluded_enough():
    kw = dict(num_samples=4, image_size=48, num_sdf_points=0, num_object_points=8, hand_only_prob=0.0,
              not_grasped_prob=0.0)
    ds = SyntheticHOI(**kw, occlusion_range=(0.3, 1.0))
    ratios = [float(ds[i]["occlusion_ratio"]) for i in range(4)]
    assert all(0.3 <= r <= 1.0 for r in ratios), ratios
    assert torch.equal(ds[1]["image"], SyntheticHOI(**kw, occlusion_range=(0.3, 1.0))[1]["image"])
    assert ds.config()["occlusion_range"] == [0.3, 1.0]
    # a range that the first draw already satisfies gives the default sample
    assert torch.equal(SyntheticHOI(**kw, occlusion_range=(0.0, 1.0))[2]["image"], SyntheticHOI(**kw)[2]["image"])
    hand_only = SyntheticHOI(**{**kw, "hand_only_prob": 1.0}, occlusion_range=(0.5, 1.0), max_attempts=3)
    with pytest.raises(ValueRangeError, match="after 3 attempts"):
        hand_only[0]
    with pytest.raises(ValueRangeError, match="low <= high"):
        SyntheticHOI(**kw, occlusion_range=(0.6, 0.2))
