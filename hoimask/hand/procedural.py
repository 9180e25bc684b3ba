"""A licence-free articulated hand with MANO's kinematic tree and parameter shapes.

:class:`ProceduralHand` takes the same ``pose (B, 16, 3)`` axis-angle (global
orientation about the wrist, then 15 local rotations in
:data:`hoimask.skeleton.MANO_JOINT_NAMES` order) and ``shape (B, 10)`` as MANO
and gives joints, a closed triangle mesh and an analytic SDF. The solid is a
union of 23 capsules: 15 phalanges (3 per finger) and 8 for the palm (4
metacarpals, 3 fillers between them, a thenar pad). See
:mod:`hoimask.hand.procedural_skeleton` for the layout, shape coefficients and
joint limits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from hoimask._checks import (
    DTypeError,
    ValueRangeError,
    check_floating,
    check_in_range,
    check_int,
    check_same_device,
    check_shape,
)
from hoimask.hand.capsules import (
    capsule_mesh_template,
    capsule_mesh_vertices,
    capsule_sdf,
    sample_capsule_surface,
)
from hoimask.hand.kinematics import forward_kinematics
from hoimask.hand.output import HandOutput
from hoimask.hand.procedural_skeleton import MANO_CHAINS, rest_skeleton, rest_tables
from hoimask.skeleton import MANO_PARENTS, order_indices

__all__ = ["HandCapsules", "NUM_CAPSULES", "ProceduralHand"]

#: Number of capsules: 15 phalanges (canonical bone order) then 8 palm capsules.
NUM_CAPSULES = 23
_MANO_TO_CANONICAL = order_indices("mano", "canonical")
_CHAIN_INDEX = [j for chain in MANO_CHAINS for j in chain]  # MANO joint of every phalanx, canonical order


class HandCapsules(NamedTuple):
    """The primitives of a posed procedural hand (union = the hand solid), metres.

    Attributes:
        a: segment starts ``(B, S, 3)``.
        b: segment ends ``(B, S, 3)``.
        radii: radii ``(B, S)``.
    """

    a: Tensor
    b: Tensor
    radii: Tensor


class ProceduralHand(nn.Module):
    """Articulated capsule hand: MANO-compatible pose/shape in, joints, mesh and SDF out.

    Args:
        num_segments: vertices around each capsule ring (mesh resolution; the
            mesh has ``23 (2 + 2 c n)`` vertices and ``92 c n`` triangles with
            ``n = num_segments``, ``c = max(2, n // 4)``: 3312 for ``n = 12``).
        device: device of the constant buffers.
        dtype: floating dtype of the constant buffers (the forward follows the inputs).

    Shape:
        pose ``(B, 16, 3)``, shape ``(B, 10)``, trans ``(B, 3)`` -> :class:`HandOutput`
        with vertices ``(B, V, 3)``, joints ``(B, 21, 3)``, mano_joints ``(B, 16, 3)``.

    Example:
        >>> hand = ProceduralHand()
        >>> out = hand(hand.grasp_pose(torch.tensor([0.5])), torch.zeros(1, 10))
        >>> out.joints.shape, hand.faces.shape
        (torch.Size([1, 21, 3]), torch.Size([3312, 3]))
    """

    faces: Tensor

    def __init__(
        self, *, num_segments: int = 12, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise DTypeError(f"ProceduralHand(): argument 'dtype' expected a floating dtype, got {dtype}")
        template = capsule_mesh_template(num_segments)
        self.num_segments = num_segments
        for name, value in rest_tables().items():
            self.register_buffer(f"_t_{name}", value.to(device=device, dtype=dtype), persistent=False)
        for name in ("end", "axial", "radial", "cos", "sin"):
            value = getattr(template, name)
            self.register_buffer(f"_m_{name}", value.to(device=device, dtype=dtype), persistent=False)
        vc = template.end.shape[0]
        offsets = torch.arange(NUM_CAPSULES, dtype=torch.int64)[:, None, None] * vc
        faces = (template.faces[None] + offsets).reshape(-1, 3)  # (S * Tc, 3)
        self.register_buffer("faces", faces.to(device), persistent=False)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, faces={tuple(self.faces.shape)}"

    # ------------------------------------------------------------------ checks
    def _check(self, pose: Tensor, shape: Tensor, trans: Tensor | None, fn: str) -> dict[str, int]:
        dims = check_shape(pose, "B 16 3", name="pose", fn=fn)
        check_shape(shape, "B 10", name="shape", dims=dims, fn=fn)
        check_floating(pose, name="pose", fn=fn)
        check_floating(shape, name="shape", fn=fn)
        named = {"pose": pose, "shape": shape}
        if trans is not None:
            check_shape(trans, "B 3", name="trans", dims=dims, fn=fn)
            check_floating(trans, name="trans", fn=fn)
            named["trans"] = trans
        check_same_device(named, fn=fn)
        return dims

    def _tables(self, like: Tensor) -> dict[str, Tensor]:
        return {k[3:]: v.to(device=like.device, dtype=like.dtype) for k, v in self._buffers.items()
                if k.startswith("_t_") and v is not None}  # fmt: skip

    # ------------------------------------------------------------- kinematics
    def _pose(self, pose: Tensor, shape: Tensor, trans: Tensor | None) -> dict[str, Tensor]:
        from hoimask.geometry import axis_angle_to_matrix

        shape = shape.to(pose.dtype)
        tables = self._tables(pose)
        rest = rest_skeleton(shape, tables)
        rotations = axis_angle_to_matrix(pose)  # (B, 16, 3, 3)
        glob_r, joints = forward_kinematics(rotations, rest["joints"], MANO_PARENTS)  # (B,16,3,3), (B,16,3)
        dips = [c[2] for c in MANO_CHAINS]
        tip_local = (rest["tips"] - rest["joints"][:, dips]).unsqueeze(-1)  # (B, 5, 3, 1)
        tips = joints[:, dips] + (glob_r[:, dips] @ tip_local).squeeze(-1)  # (B, 5, 3)
        batch = pose.shape[0]
        chain_pts = torch.cat([joints[:, _CHAIN_INDEX].view(batch, 5, 3, 3), tips[:, :, None]], dim=2)  # (B,5,4,3)
        finger_a = chain_pts[:, :, :3].reshape(batch, 15, 3)
        finger_b = chain_pts[:, :, 1:].reshape(batch, 15, 3)
        # Reference direction for the mesh frame: each finger's flex target, rotated with its bone.
        spread_axis = tables["axes"][[j - 1 for j in _CHAIN_INDEX], 1]  # (15, 3)
        finger_ref = (glob_r[:, _CHAIN_INDEX] @ spread_axis[None, :, :, None]).squeeze(-1)
        root_r, root_t, root_rest = glob_r[:, 0], joints[:, 0], rest["joints"][:, 0]

        def rigid(points: Tensor) -> Tensor:  # rest points moving with the wrist
            return ((points - root_rest[:, None]) @ root_r.transpose(1, 2)) + root_t[:, None]

        palm_ref = root_r[:, :, 1][:, None].expand(batch, 8, 3)  # rest +y, rotated
        a = torch.cat([finger_a, rigid(rest["palm_a"])], dim=1)  # (B, 23, 3)
        b = torch.cat([finger_b, rigid(rest["palm_b"])], dim=1)
        radii = torch.cat([rest["radius"].reshape(batch, 15), rest["palm_radius"]], dim=1)  # (B, 23)
        mano21 = torch.cat([joints, tips], dim=1)  # (B, 21, 3) MANO order
        if trans is not None:
            shift = trans.to(pose.dtype)[:, None]
            a, b, joints, mano21 = a + shift, b + shift, joints + shift, mano21 + shift
        ref = torch.cat([finger_ref, palm_ref], dim=1)
        return {"a": a, "b": b, "radii": radii, "ref": ref, "mano_joints": joints, "mano21": mano21}

    def capsules(self, pose: Tensor, shape: Tensor, trans: Tensor | None = None) -> HandCapsules:
        """The capsules whose union is the posed hand (for fast ray casting / sphere tracing).

        Args:
            pose: MANO-style axis-angle pose.
            shape: shape coefficients.
            trans: optional translation (metres).

        Returns:
            :class:`HandCapsules` ``(a (B,23,3), b (B,23,3), radii (B,23))``: 15
            phalanges in canonical bone order (thumb..little, proximal->distal),
            then 8 palm capsules.

        Shape:
            pose ``(B, 16, 3)``, shape ``(B, 10)``, trans ``(B, 3)`` -> ``(B, 23, 3)``, ``(B, 23, 3)``, ``(B, 23)``.
        """
        self._check(pose, shape, trans, "ProceduralHand.capsules")
        posed = self._pose(pose, shape, trans)
        return HandCapsules(posed["a"], posed["b"], posed["radii"])

    def forward(self, pose: Tensor, shape: Tensor, trans: Tensor | None = None) -> HandOutput:
        """Pose the hand: mesh vertices, 21 canonical joints and 16 MANO joints (metres).

        Args:
            pose: axis-angle ``(B, 16, 3)``, MANO's convention and joint order.
            shape: shape coefficients ``(B, 10)``.
            trans: optional translation ``(B, 3)``.

        Returns:
            :class:`HandOutput`; ``vertices`` index into :attr:`faces`.

        Shape:
            see the class docstring.
        """
        self._check(pose, shape, trans, "ProceduralHand.forward")
        posed = self._pose(pose, shape, trans)
        template = {k[3:]: v.to(device=pose.device, dtype=pose.dtype) for k, v in self._buffers.items()
                    if k.startswith("_m_")}  # fmt: skip
        verts = capsule_mesh_vertices(posed["a"], posed["b"], posed["radii"], posed["ref"], _Template(**template))
        vertices = verts.flatten(1, 2)  # (B, 23 * Vc, 3)
        return HandOutput(vertices, posed["mano21"][:, _MANO_TO_CANONICAL], posed["mano_joints"])

    def sdf(self, points: Tensor, pose: Tensor, shape: Tensor, trans: Tensor | None = None) -> Tensor:
        """Analytic signed distance of the posed hand (union of capsules), negative inside.

        Args:
            points: query points (metres, same frame as the posed hand).
            pose: axis-angle pose.
            shape: shape coefficients.
            trans: optional translation.

        Returns:
            ``(B, Q)`` signed distances in metres.

        Shape:
            points ``(B, Q, 3)``, pose ``(B, 16, 3)``, shape ``(B, 10)``, trans ``(B, 3)`` -> ``(B, Q)``.
        """
        dims = self._check(pose, shape, trans, "ProceduralHand.sdf")
        check_shape(points, "B Q 3", name="points", dims=dims)
        check_floating(points, name="points")
        check_same_device({"points": points, "pose": pose})
        posed = self._pose(pose, shape, trans)
        dt = torch.promote_types(points.dtype, pose.dtype)
        return capsule_sdf(points.to(dt), posed["a"].to(dt), posed["b"].to(dt), posed["radii"].to(dt))

    def sample_surface(
        self,
        pose: Tensor,
        shape: Tensor,
        trans: Tensor | None = None,
        *,
        num_points: int,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Uniform random points on the hand's outer surface (exactly on the analytic solid).

        Unlike sampling the triangles of :attr:`faces`, this never returns the
        parts of capsules hidden inside other capsules.

        Args:
            pose: axis-angle pose.
            shape: shape coefficients.
            trans: optional translation.
            num_points: points per hand ``N``.
            generator: CPU random generator.

        Returns:
            ``(B, N, 3)`` points with ``sdf == 0`` (up to rounding).

        Shape:
            pose ``(B, 16, 3)``, shape ``(B, 10)``, trans ``(B, 3)`` -> ``(B, N, 3)``.
        """
        self._check(pose, shape, trans, "ProceduralHand.sample_surface")
        posed = self._pose(pose, shape, trans)
        return sample_capsule_surface(posed["a"], posed["b"], posed["radii"], num_points, generator=generator)

    # ------------------------------------------------------------ pose tools
    def joint_limits(self) -> tuple[Tensor, Tensor]:
        """Lower and upper joint limits in (flex, spread, twist) radians, MANO joints 1..15.

        Returns:
            ``(lower (15, 3), upper (15, 3))``.

        Shape:
            ``-> (15, 3), (15, 3)``.
        """
        limits = self._buffers["_t_limits"]
        return limits[..., 0], limits[..., 1]

    def angles_to_pose(self, angles: Tensor, global_orient: Tensor | None = None) -> Tensor:
        """Anatomical angles (flex, spread, twist) of joints 1..15 -> MANO axis-angle pose.

        Args:
            angles: ``(B, 15, 3)`` radians.
            global_orient: optional axis-angle ``(B, 3)`` of the wrist (zero if ``None``).

        Returns:
            ``(B, 16, 3)`` axis-angle pose.

        Shape:
            ``(B, 15, 3)`` -> ``(B, 16, 3)``.
        """
        dims = check_shape(angles, "B 15 3", name="angles")
        check_floating(angles, name="angles")
        axes = self._buffers["_t_axes"].to(device=angles.device, dtype=angles.dtype)  # (15, 3, 3)
        local = torch.einsum("bjk,jkc->bjc", angles, axes)  # (B, 15, 3)
        if global_orient is None:
            global_orient = angles.new_zeros(angles.shape[0], 3)
        check_shape(global_orient, "B 3", name="global_orient", dims=dims)
        return torch.cat([global_orient.to(angles.dtype)[:, None], local], dim=1)

    def pose_to_angles(self, pose: Tensor) -> Tensor:
        """MANO axis-angle pose -> anatomical angles (flex, spread, twist) of joints 1..15.

        Args:
            pose: ``(B, 16, 3)`` axis-angle.

        Returns:
            ``(B, 15, 3)`` radians (the global orientation is dropped).

        Shape:
            ``(B, 16, 3)`` -> ``(B, 15, 3)``.
        """
        check_shape(pose, "B 16 3", name="pose")
        check_floating(pose, name="pose")
        axes = self._buffers["_t_axes"].to(device=pose.device, dtype=pose.dtype)
        return torch.einsum("bjc,jkc->bjk", pose[:, 1:], axes)

    def grasp_pose(self, amount: Tensor, *, spread: Tensor | float | None = None) -> Tensor:
        """A power-grasp pose: every finger curls by ``amount`` (0 open, 1 closed fist-like).

        Args:
            amount: curl per hand in ``[0, 1]``.
            spread: optional spread of the fingers per hand (or one float) in
                ``[-1, 1]``; 1 fans them apart, -1 squeezes them together.

        Returns:
            ``(B, 16, 3)`` axis-angle pose with zero global orientation, within :meth:`joint_limits`.

        Shape:
            amount ``(B,)`` -> ``(B, 16, 3)``.
        """
        check_shape(amount, "B", name="amount")
        check_floating(amount, name="amount")
        if bool(((amount < 0) | (amount > 1)).any()):
            raise ValueRangeError(
                f"grasp_pose(): argument 'amount' expected values in [0, 1], got min {float(amount.min())}, "
                f"max {float(amount.max())}"
            )
        tables = self._tables(amount)
        angles = amount.new_zeros(amount.shape[0], 15, 3)
        angles[..., 0] = amount[:, None] * tables["grasp_flex"]
        thumb = [j - 1 for j in MANO_CHAINS[0]]
        angles[:, thumb[0], 1] = 0.4 * amount
        if spread is not None:
            if isinstance(spread, (int, float)) and not isinstance(spread, bool):
                spread = amount.new_full(amount.shape, check_in_range(spread, name="spread", low=-1, high=1))
            check_shape(spread, "B", name="spread", dims={"B": amount.shape[0]})
            check_floating(spread, name="spread")
            if bool(((spread < -1) | (spread > 1)).any()):
                raise ValueRangeError("grasp_pose(): argument 'spread' expected values in [-1, 1]")
            mcps = [c[0] - 1 for c in MANO_CHAINS[1:]]
            upper = tables["limits"][mcps, 1, 1]  # (4,)
            angles[:, mcps, 1] = spread.to(amount.dtype)[:, None] * upper
        return self.angles_to_pose(angles)

    def sample_shape(self, batch_size: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Random plausible shapes: ``β ~ N(0, 1)`` truncated to ``[-3, 3]``.

        Args:
            batch_size: number of hands ``B``.
            generator: random generator (CPU) for reproducibility.

        Returns:
            ``(B, 10)`` shape coefficients (dtype/device of the module).

        Shape:
            ``-> (B, 10)``.
        """
        ref = self._buffers["_t_base"]
        check_int(batch_size, name="batch_size", low=1, fn="ProceduralHand.sample_shape")
        beta = torch.randn(batch_size, 10, generator=generator, dtype=torch.float64).clamp(-3.0, 3.0)
        return beta.to(device=ref.device, dtype=ref.dtype)

    def sample_pose(
        self, batch_size: int, *, generator: torch.Generator | None = None, random_orient: bool = True
    ) -> Tensor:
        """Random plausible poses within :meth:`joint_limits`.

        Each hand draws a base curl ``g ~ U(0, 1)``; every finger curls by
        ``g + 0.25 N(0, 1)`` of its full-grasp flexion (per-joint noise 0.1 rad),
        spreads and twists uniformly in the middle half of their limits; all
        angles are then kept inside the limits. With ``random_orient`` the
        global orientation is uniform on SO(3), otherwise zero.

        Args:
            batch_size: number of hands ``B``.
            generator: random generator (CPU) for reproducibility.
            random_orient: draw a uniformly random global orientation.

        Returns:
            ``(B, 16, 3)`` axis-angle poses (dtype/device of the module).

        Shape:
            ``-> (B, 16, 3)``.
        """
        n = check_int(batch_size, name="batch_size", low=1, fn="ProceduralHand.sample_pose")
        f64 = torch.float64
        tables = {k: v.to(device="cpu", dtype=f64) for k, v in self._tables(self._buffers["_t_base"]).items()}
        lo, hi = tables["limits"][..., 0], tables["limits"][..., 1]  # (15, 3)
        base = torch.rand(n, 1, generator=generator, dtype=f64)
        curl = (base + 0.25 * torch.randn(n, 5, generator=generator, dtype=f64)).clamp(0.0, 1.0)  # (B, 5)
        curl_joint = curl[:, [f for f, chain in enumerate(MANO_CHAINS) for _ in chain]]  # canonical phalanx order
        curl_mano = torch.empty_like(curl_joint)
        curl_mano[:, [j - 1 for j in _CHAIN_INDEX]] = curl_joint  # (B, 15) in MANO joint order
        angles = torch.empty(n, 15, 3, dtype=f64)
        angles[..., 0] = curl_mano * tables["grasp_flex"] + 0.1 * torch.randn(n, 15, generator=generator, dtype=f64)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        angles[..., 1:] = mid[:, 1:] + half[:, 1:] * (torch.rand(n, 15, 2, generator=generator, dtype=f64) - 0.5)
        angles = torch.maximum(torch.minimum(angles, hi), lo)
        orient = torch.zeros(n, 3, dtype=f64)
        if random_orient:
            q = torch.randn(n, 4, generator=generator, dtype=f64)
            q = q / q.norm(dim=-1, keepdim=True)
            q = torch.where(q[:, :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
            vec_norm = q[:, 1:].norm(dim=-1, keepdim=True).clamp_min(1e-12)
            orient = q[:, 1:] / vec_norm * (2 * torch.atan2(vec_norm, q[:, :1]))
        pose = self.angles_to_pose(angles, orient)
        ref = self._buffers["_t_base"]
        return pose.to(device=ref.device, dtype=ref.dtype)


class _Template(NamedTuple):
    end: Tensor
    axial: Tensor
    radial: Tensor
    cos: Tensor
    sin: Tensor
