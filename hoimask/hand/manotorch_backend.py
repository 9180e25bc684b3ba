"""Optional backend: the ``manotorch`` package behind hoimask's :class:`HandOutput` interface.

``manotorch`` (Yang et al., CPF) is not a dependency; it is imported only when
:class:`ManotorchLayer` is built. It reads MANO through the official ``mano``
webuser code and therefore still needs chumpy, unlike :class:`MANOLayer`.
Outputs are converted to hoimask's conventions: metres (manotorch's unit),
joints in the canonical order (manotorch already returns that order, tips from
vertices 745, 317, 444, 556, 673 — 445 for the left middle tip), plus the 16
MANO joints from its global transforms. manotorch does not fix the left-hand
``shapedirs`` defect (see ``docs/hand.md``).
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from hoimask._checks import HoimaskError, check_choice, check_floating, check_shape
from hoimask.hand.output import HandOutput

__all__ = ["ManotorchLayer"]


class ManotorchLayer(nn.Module):
    """:class:`~hoimask.hand.MANOLayer`-compatible wrapper of ``manotorch.manolayer.ManoLayer``.

    Args:
        mano_root: folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``.
        side: ``"right"`` or ``"left"``.
        use_pca: poses are ``(B, 3 + num_pca_comps)``.
        num_pca_comps: number of PCA components.
        flat_hand_mean: zero pose = flat hand.
        center_root: subtract the wrist before adding ``trans``.

    Shape:
        pose ``(B, 16, 3)`` / ``(B, 48)`` (or ``(B, 3 + K)`` with PCA), shape
        ``(B, 10)``, trans ``(B, 3)`` -> :class:`HandOutput`.
    """

    def __init__(
        self,
        mano_root: str | os.PathLike[str],
        *,
        side: str = "right",
        use_pca: bool = False,
        num_pca_comps: int = 45,
        flat_hand_mean: bool = True,
        center_root: bool = False,
    ) -> None:
        super().__init__()
        check_choice(side, ("right", "left"), name="side")
        try:
            from manotorch.manolayer import ManoLayer
        except ImportError as exc:
            raise HoimaskError(
                "ManotorchLayer needs the optional 'manotorch' package (pip install manotorch); "
                "hoimask.hand.MANOLayer needs nothing extra"
            ) from exc
        self.layer = ManoLayer(
            rot_mode="axisang",
            side=side,
            center_idx=0 if center_root else None,
            mano_assets_root=str(mano_root),
            use_pca=use_pca,
            flat_hand_mean=flat_hand_mean,
            ncomps=num_pca_comps,
        )
        self.use_pca = use_pca
        self.num_pca_comps = num_pca_comps

    def forward(self, pose: Tensor, shape: Tensor, trans: Tensor | None = None) -> HandOutput:
        """Pose the hand with manotorch.

        Args:
            pose: axis-angle ``(B, 16, 3)`` / ``(B, 48)``, or ``(B, 3 + K)`` with PCA.
            shape: ``(B, 10)`` shape coefficients.
            trans: optional ``(B, 3)`` translation.

        Returns:
            :class:`HandOutput` in metres, canonical joint order.

        Shape:
            see the class docstring.
        """
        if self.use_pca:
            dims = check_shape(pose, f"B {3 + self.num_pca_comps}", name="pose")
        elif isinstance(pose, Tensor) and pose.dim() == 3:
            dims = check_shape(pose, "B 16 3", name="pose")
        else:
            dims = check_shape(pose, "B 48", name="pose")
        check_floating(pose, name="pose")
        flat = pose.reshape(dims["B"], -1)
        check_shape(shape, "B 10", name="shape", dims=dims)
        out = self.layer(flat, shape)
        vertices, joints = out.verts, out.joints
        mano_joints = out.transforms_abs[:, :, :3, 3]
        if trans is not None:
            check_shape(trans, "B 3", name="trans", dims=dims)
            shift = trans.unsqueeze(1).to(vertices.dtype)
            vertices, joints, mano_joints = vertices + shift, joints + shift, mano_joints + shift
        return HandOutput(vertices, joints, mano_joints)
