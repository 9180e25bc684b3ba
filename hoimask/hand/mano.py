"""The MANO hand model as a differentiable layer, from the official files, without chumpy.

See ``docs/hand.md`` for how to obtain the licensed assets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hoimask._checks import (
    DTypeError,
    FileFormatError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_floating,
    check_int,
    check_same_device,
    check_shape,
)
from hoimask.hand.assets import load_mano_arrays, to_npz
from hoimask.hand.kinematics import forward_kinematics, linear_blend_skinning
from hoimask.hand.output import HandOutput
from hoimask.skeleton import MANO_PARENTS, order_indices

__all__ = ["FINGERTIP_VERTEX_IDS", "LEFT_FINGERTIP_VERTEX_IDS", "MANOLayer", "mano_skin"]

#: Fingertip vertex ids (thumb, index, middle, ring, little) of the right-hand MANO mesh.
#: ``"manopth"``: the manopth layer used to annotate DexYCB (and by HO3D / HOISDF);
#: ``"smplx"``: smplx's ``VERTEX_IDS["mano"]`` (FreiHAND-style tips).
FINGERTIP_VERTEX_IDS: dict[str, tuple[int, int, int, int, int]] = {
    "manopth": (745, 317, 444, 556, 673),
    "smplx": (744, 320, 443, 554, 671),
}
#: The same for the left-hand mesh. manopth takes the left middle tip from vertex
#: 445, not 444 (``ManoLayer.forward`` in ``manopth/manolayer.py``; manotorch
#: copies it); smplx uses one set of ids for both hands.
LEFT_FINGERTIP_VERTEX_IDS: dict[str, tuple[int, int, int, int, int]] = {
    "manopth": (745, 317, 445, 556, 673),
    "smplx": (744, 320, 443, 554, 671),
}
_MANO_TO_CANONICAL = order_indices("mano", "canonical")


def mano_skin(
    rotations: Tensor,
    betas: Tensor,
    *,
    v_template: Tensor,
    shapedirs: Tensor,
    posedirs: Tensor,
    j_regressor: Tensor,
    weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """MANO's shape blend, pose blend and linear blend skinning (the SMPL recipe).

    Args:
        rotations: local rotation matrices, joint 0 = global orientation (about the rest wrist).
        betas: shape coefficients.
        v_template: template vertices.
        shapedirs: shape blend shapes.
        posedirs: pose blend shapes flattened to ``(9 * (J - 1), V * 3)``.
        j_regressor: joint regressor (dense).
        weights: skinning weights.

    Returns:
        ``(vertices (B, V, 3), joints (B, J, 3))`` before translation.

    Shape:
        rotations ``(B, J, 3, 3)``, betas ``(B, S)``, v_template ``(V, 3)``,
        shapedirs ``(V, 3, S)``, posedirs ``(9(J-1), 3V)``, j_regressor ``(J, V)``,
        weights ``(V, J)`` -> ``(B, V, 3)``, ``(B, J, 3)``.
    """
    dims = check_shape(rotations, "B J 3 3", name="rotations")
    check_shape(betas, "B S", name="betas", dims=dims)
    check_shape(v_template, "V 3", name="v_template", dims=dims)
    check_shape(shapedirs, "V 3 S", name="shapedirs", dims=dims)
    check_shape(posedirs, f"{9 * (dims['J'] - 1)} {3 * dims['V']}", name="posedirs")
    check_shape(j_regressor, "J V", name="j_regressor", dims=dims)
    check_shape(weights, "V J", name="weights", dims=dims)
    batch = rotations.shape[0]
    v_shaped = v_template + torch.einsum("bs,vcs->bvc", betas, shapedirs)  # (B, V, 3)
    rest_joints = torch.einsum("jv,bvc->bjc", j_regressor, v_shaped)  # (B, J, 3)
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)  # (B, 9 (J - 1))
    v_posed = v_shaped + (pose_feature @ posedirs).view(batch, -1, 3)  # (B, V, 3)
    glob_r, posed_joints = forward_kinematics(rotations, rest_joints, MANO_PARENTS)
    vertices = linear_blend_skinning(v_posed, weights, rest_joints, glob_r, posed_joints)
    return vertices, posed_joints


def _other_side_file(path: Path, side: str) -> Path | None:
    name = path.name
    src, dst = ("LEFT", "RIGHT") if side == "left" else ("RIGHT", "LEFT")
    if src not in name.upper():
        return None
    i = name.upper().index(src)
    other = path.with_name(name[:i] + dst + name[i + len(src) :])
    return other if other.is_file() else None


class MANOLayer(nn.Module):
    """Differentiable MANO: pose (+PCA), shape and translation -> 778 vertices and 21 joints, metres.

    Loads ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (official, read by a restricted
    unpickler: no chumpy, no code execution) or an ``.npz`` from :func:`to_npz`.

    Args:
        model_path: path of the MANO ``.pkl`` or ``.npz`` file.
        side: ``"right"`` or ``"left"``; must agree with a ``RIGHT``/``LEFT`` file name.
        use_pca: poses are ``(B, 3 + num_pca_comps)``: global axis-angle, then PCA coefficients.
        num_pca_comps: number of PCA components (1..45).
        flat_hand_mean: ``True``: zero pose is the flat template hand; ``False``:
            MANO's mean pose ``hands_mean`` is added to the 45 finger axis-angles.
        center_root: subtract the posed wrist (MANO joint 0) before adding ``trans``.
        fingertips: which fingertip vertex ids to use (:data:`FINGERTIP_VERTEX_IDS` for the
            right hand, :data:`LEFT_FINGERTIP_VERTEX_IDS` for the left: manopth's left
            middle tip is vertex 445).
        fix_left_shapedirs: negate the x component of a left model's shape blend
            shapes (the official ``MANO_LEFT.pkl`` defect). ``None`` decides: when
            ``MANO_RIGHT`` sits next to the left file, fix only if both x
            components agree (the smplx rule); otherwise fix.
        dtype: dtype of the buffers (the forward follows the input's dtype).
        device: device of the buffers.

    Shape:
        pose ``(B, 16, 3)`` / ``(B, 48)`` axis-angle, ``(B, 16, 6)`` 6D,
        ``(B, 16, 3, 3)`` matrices, or ``(B, 3 + K)`` with ``use_pca``;
        shape ``(B, 10)``; trans ``(B, 3)`` -> :class:`HandOutput` with vertices
        ``(B, 778, 3)``, joints ``(B, 21, 3)``, mano_joints ``(B, 16, 3)``.

    Example:
        >>> import tempfile, pathlib, torch
        >>> from hoimask.hand.testing import write_synthetic_mano
        >>> path = write_synthetic_mano(pathlib.Path(tempfile.mkdtemp()) / "MANO_RIGHT.pkl")
        >>> out = MANOLayer(path)(torch.zeros(2, 16, 3), torch.zeros(2, 10))
        >>> out.vertices.shape, out.joints.shape
        (torch.Size([2, 778, 3]), torch.Size([2, 21, 3]))
    """

    faces: Tensor
    #: Convert a MANO ``.pkl`` once into a pickle-free ``.npz`` (:func:`hoimask.hand.to_npz`).
    to_npz = staticmethod(to_npz)

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        side: str = "right",
        use_pca: bool = False,
        num_pca_comps: int = 45,
        flat_hand_mean: bool = True,
        center_root: bool = False,
        fingertips: str = "manopth",
        fix_left_shapedirs: bool | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_choice(side, ("right", "left"), name="side")
        check_choice(fingertips, FINGERTIP_VERTEX_IDS, name="fingertips")
        check_int(num_pca_comps, name="num_pca_comps", low=1, high=45)
        path = Path(model_path)
        stated = "left" if "LEFT" in path.name.upper() else "right" if "RIGHT" in path.name.upper() else None
        if stated is not None and stated != side:
            raise ValueRangeError(
                f"MANOLayer(): argument 'side' is {side!r} but the file '{path}' is a {stated}-hand model"
            )
        arrays = load_mano_arrays(path)
        if tuple(int(p) for p in arrays["kintree_table"][0, 1:]) != MANO_PARENTS[1:]:
            raise FileFormatError(
                f"MANO file '{path}': kintree_table parents {arrays['kintree_table'][0].tolist()} "
                f"differ from MANO's {list(MANO_PARENTS)}"
            )
        shapedirs = arrays["shapedirs"].copy()
        self.left_shapedirs_fixed = False
        if side == "left":
            if fix_left_shapedirs is None:
                fix_left_shapedirs = True
                other = _other_side_file(path, side)
                if other is not None:
                    right = load_mano_arrays(other)["shapedirs"]
                    fix_left_shapedirs = bool(np.abs(shapedirs[:, 0] - right[:, 0]).sum() < 1.0)
            if fix_left_shapedirs:
                shapedirs[:, 0, :] *= -1.0
                self.left_shapedirs_fixed = True
        self.side = side
        self.use_pca = use_pca
        self.num_pca_comps = num_pca_comps
        self.flat_hand_mean = flat_hand_mean
        self.center_root = center_root
        self.fingertips = fingertips
        self.model_path = str(path)
        fkw = {"dtype": dtype or torch.get_default_dtype(), "device": device}

        def buf(name: str, value: np.ndarray) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(value), **fkw), persistent=False)

        buf("v_template", arrays["v_template"])
        buf("shapedirs", shapedirs)
        buf("posedirs", arrays["posedirs"].reshape(-1, 135).T)  # (135, 778 * 3)
        buf("j_regressor", arrays["J_regressor"])
        buf("weights", arrays["weights"])
        buf("hands_components", arrays["hands_components"][:num_pca_comps])
        buf("hands_mean", np.zeros(45) if flat_hand_mean else arrays["hands_mean"])
        self.register_buffer("faces", torch.as_tensor(arrays["f"], dtype=torch.int64, device=device), persistent=False)
        tip_ids = (LEFT_FINGERTIP_VERTEX_IDS if side == "left" else FINGERTIP_VERTEX_IDS)[fingertips]
        tips = torch.tensor(tip_ids, dtype=torch.int64, device=device)
        self.register_buffer("tip_vertex_ids", tips, persistent=False)

    def extra_repr(self) -> str:
        return (
            f"side={self.side!r}, use_pca={self.use_pca}, num_pca_comps={self.num_pca_comps}, "
            f"flat_hand_mean={self.flat_hand_mean}, center_root={self.center_root}, "
            f"fingertips={self.fingertips!r}"
        )

    def pose_to_rotations(self, pose: Tensor) -> Tensor:
        """Turn any accepted pose layout into 16 local rotation matrices (mean pose included).

        Args:
            pose: see the class ``Shape`` block.

        Returns:
            Rotation matrices ``(B, 16, 3, 3)``.

        Shape:
            ``(B, 16, 3) | (B, 48) | (B, 16, 6) | (B, 16, 3, 3) | (B, 3 + K)`` -> ``(B, 16, 3, 3)``.
        """
        from hoimask.geometry import axis_angle_to_matrix, rotation_6d_to_matrix

        if not isinstance(pose, Tensor):
            raise DTypeError(f"MANOLayer.forward(): argument 'pose' expected a torch.Tensor, got {type(pose).__name__}")
        check_floating(pose, name="pose", fn="MANOLayer.forward")
        batch = pose.shape[0] if pose.dim() > 0 else 0
        if self.use_pca:
            k = self.num_pca_comps
            check_shape(pose, f"B {3 + k}", name="pose", fn="MANOLayer.forward")
            fingers = pose[:, 3:] @ self.hands_components.to(pose.dtype)  # (B, 45)
            aa = torch.cat([pose[:, :3], fingers + self.hands_mean.to(pose.dtype)], dim=1)
            return axis_angle_to_matrix(aa.view(batch, 16, 3))
        shape = tuple(pose.shape)
        if len(shape) == 2 and shape[1] == 48:
            pose = pose.view(batch, 16, 3)
            shape = tuple(pose.shape)
        if len(shape) == 3 and shape[1:] == (16, 3):
            mean = torch.cat([self.hands_mean.new_zeros(3), self.hands_mean]).to(pose.dtype).view(16, 3)
            return axis_angle_to_matrix(pose + mean)
        if len(shape) == 3 and shape[1:] == (16, 6):
            return rotation_6d_to_matrix(pose)
        if len(shape) == 4 and shape[1:] == (16, 3, 3):
            return pose
        raise ShapeError(
            "MANOLayer.forward(): argument 'pose' expected shape (B, 16, 3) or (B, 48) axis-angle, "
            f"(B, 16, 6) 6D or (B, 16, 3, 3) matrices, got shape {shape}"
        )

    def forward(self, pose: Tensor, shape: Tensor, trans: Tensor | None = None) -> HandOutput:
        """Pose and shape the hand.

        Args:
            pose: axis-angle ``(B, 16, 3)``/``(B, 48)``, 6D ``(B, 16, 6)``, matrices
                ``(B, 16, 3, 3)``, or with ``use_pca`` ``(B, 3 + num_pca_comps)``.
                Joint 0 is the global orientation about the rest wrist; joints
                1..15 follow :data:`hoimask.skeleton.MANO_JOINT_NAMES`. The mean
                pose (``flat_hand_mean=False``) is added to axis-angle and PCA
                poses only: 6D and matrix inputs are the final local rotations.
            shape: shape coefficients β.
            trans: optional translation added last (metres).

        Returns:
            :class:`HandOutput` (metres): vertices, 21 canonical joints (tips =
            fingertip vertices), 16 MANO joints.

        Shape:
            see the class docstring.
        """
        rotations = self.pose_to_rotations(pose)
        dims = check_shape(rotations, "B 16 3 3", name="pose")
        check_shape(shape, "B 10", name="shape", dims=dims)
        check_floating(shape, name="shape")
        tensors = {"pose": pose, "shape": shape}
        if trans is not None:
            check_shape(trans, "B 3", name="trans", dims=dims)
            check_floating(trans, name="trans")
            tensors["trans"] = trans
        tensors["model buffers"] = self.v_template
        check_same_device(tensors)
        dt = rotations.dtype
        vertices, mano_joints = mano_skin(
            rotations,
            shape.to(dt),
            v_template=self.v_template.to(dt),
            shapedirs=self.shapedirs.to(dt),
            posedirs=self.posedirs.to(dt),
            j_regressor=self.j_regressor.to(dt),
            weights=self.weights.to(dt),
        )
        tips = vertices[:, self.tip_vertex_ids]  # (B, 5, 3) thumb, index, middle, ring, little
        joints = torch.cat([mano_joints, tips], dim=1)[:, _MANO_TO_CANONICAL]  # (B, 21, 3)
        if self.center_root:
            root = mano_joints[:, :1]
            vertices, joints, mano_joints = vertices - root, joints - root, mano_joints - root
        if trans is not None:
            offset = trans.to(dt).unsqueeze(1)
            vertices, joints, mano_joints = vertices + offset, joints + offset, mano_joints + offset
        return HandOutput(vertices, joints, mano_joints)
