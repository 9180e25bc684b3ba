"""HOISDF point-side parts trained together on two fixed synthetic samples: every loss term falls >= 10x."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hoimask.data import SyntheticHOI
from hoimask.geometry import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix
from hoimask.losses import joint_vote_loss, sdf_l1_loss
from hoimask.nn import DeepSDFDecoder, JointVotingHead, PointPoseTransformer, PointTokenEmbedding


def _batch() -> dict[str, torch.Tensor]:
    ds = SyntheticHOI(4, image_size=64, seed=3, num_sdf_points=256)
    samples = [ds[i] for i in range(2)]
    keys = ("image", "K", "sdf_points", "sdf_hand", "sdf_object", "joints_3d", "hand_pose", "hand_shape")
    return {k: torch.stack([s[k] for s in samples]) for k in keys}


def _nearest(points: torch.Tensor, sdf: torch.Tensor, k: int) -> torch.Tensor:
    """The k points with the smallest |sdf| (HOISDF's near-surface "pre-points")."""
    idx = sdf.nan_to_num(1.0).abs().argsort(dim=1)[:, :k]  # (B, k)
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, 3))


def train(steps: int, seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    torch.manual_seed(seed)
    b = _batch()
    root = b["joints_3d"][:, 0]  # (B, 3) hand root = the hand field's centre
    hand_points = _nearest(b["sdf_points"], b["sdf_hand"], 48)  # (B, 48, 3)
    object_points = _nearest(b["sdf_points"], b["sdf_object"], 16)  # (B, 16, 3)
    relative = hand_points - root[:, None]
    target_joints = b["joints_3d"] - root[:, None]
    target_6d = matrix_to_rotation_6d(axis_angle_to_matrix(b["hand_pose"]))  # (B, 16, 6)

    channels, dim = 8, 64
    stem = torch.nn.Conv2d(3, channels, 3, stride=2, padding=1)  # a stand-in image backbone
    decoder = DeepSDFDecoder(2 * channels, feature_dim=32, feature_hidden=(32,), hidden=96, dropout=0.0)
    embed = PointTokenEmbedding(2 * channels, dim=dim, feature_hidden=(32,))
    transformer = PointPoseTransformer(dim, num_heads=2, mlp_dim=64, encoder_depth=2, decoder_depth=2, dropout=0.0)
    voting = JointVotingHead(dim, hidden=128)
    modules = torch.nn.ModuleList([stem, decoder, embed, transformer, voting])
    optimizer = torch.optim.Adam(modules.parameters(), lr=3e-3)


    def losses() -> dict[str, torch.Tensor]:
        fmap = stem(b["image"])
        maps = [fmap, F.avg_pool2d(fmap, 2)]
        sdf = decoder(b["sdf_points"], root, b["K"], maps, (64, 64)).sdf
        hand = decoder(hand_points, root, b["K"], maps, (64, 64))
        cross = decoder(object_points, root, b["K"], maps, (64, 64))  # object points in the hand field
        hand_tokens = embed(hand_points, root, hand.image_features, hand.sdf, field="hand")
        cross_tokens = embed(object_points, root, cross.image_features, cross.sdf, field="hand").detach()
        out = transformer(hand_tokens, cross_tokens)
        votes = voting(relative, out.point_features)  # every encoder layer votes
        vote = joint_vote_loss(relative, votes.votes, votes.logits, votes.joints, target_joints)
        rot = matrix_to_rotation_6d(rotation_6d_to_matrix(out.rotation_6d))
        return {
            "sdf": sdf_l1_loss(sdf, b["sdf_hand"] * 3.1, clamp_distance=0.15),
            "vote_offset": vote.offset,
            "vote_classification": vote.classification,
            "vote_joints": vote.joints,
            "mano_rotation": F.mse_loss(rot, target_6d.expand_as(rot)),
            "mano_shape": F.mse_loss(out.shape, b["hand_shape"].expand_as(out.shape)),
        }

    weights = {"sdf": 50.0, "vote_offset": 0.1, "vote_classification": 5.0, "vote_joints": 0.1,
               "mano_rotation": 10.0, "mano_shape": 1.0}
    with torch.no_grad():
        first = {k: float(v) for k, v in losses().items()}
    for _ in range(steps):
        terms = losses()
        optimizer.zero_grad()
        sum(weights[k] * v for k, v in terms.items()).backward()
        optimizer.step()

    with torch.no_grad():
        last = {k: float(v) for k, v in losses().items()}
    return first, last


def test_every_loss_term_falls_tenfold():
    first, last = train(steps=150)
    ratios = {k: first[k] / max(last[k], 1e-12) for k in first}
    assert all(r >= 10 for r in ratios.values()), ratios
