"""Random hand–object scenes and their rendering by batched ray casting.

A scene is a :class:`~hoimask.hand.ProceduralHand` (a union of 23 capsules)
posed in the camera frame, optionally an object (:class:`SceneObject`), a
pinhole camera ``K``, a background picture, a light and colours.
:func:`sample_scene` draws one; :func:`render_scene` casts one ray per pixel
centre against the capsules and the object in closed form (no marching),
shades the hits (Blinn–Phong) and composites them over the background.

Placement of a grasped object: the object (a primitive's sampled size
jittered by ±20 %) starts centred on the palm and slides out along the palm normal, on the
side the fingers curl to, to the first position where its surface samples
stay outside the hand (up to ``penetration``): it then touches the palm or
the fingers. A
not-grasped object is put beside the hand with a gap of at least
``min_gap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hoimask._checks import check_shape
from hoimask.geometry import axis_angle_to_matrix, matrix_to_axis_angle, quaternion_to_matrix
from hoimask.hand.capsules import capsule_sdf
from hoimask.skeleton import JOINT_INDEX

from .objects import SceneObject, sample_primitive
from .raycast import camera_rays, intersect_capsules, sdf_normals
from .textures import object_albedo, random_background, sample_skin_tone, sample_texture, shade

__all__ = ["Rendering", "Scene", "render_scene", "sample_scene"]


@dataclass
class Scene:
    """One synthetic scene, everything in the camera frame (metres).

    Attributes:
        hand_pose: ``(16, 3)`` axis-angle (flat hand = 0, global rotation first).
        hand_shape: ``(10,)``.
        hand_trans: ``(3,)`` translation passed to the hand model.
        capsules: ``(a (23, 3), b (23, 3), radii (23,))`` of the posed hand.
        joints: ``(21, 3)`` canonical joints.
        vertices: ``(V, 3)`` hand mesh vertices (faces: ``hand.faces``).
        obj: the object or ``None``.
        grasped: the scene placed the object in the hand (in contact, held). This is
            UniHOPE's motion-rule label for a single frame: the object's rest pose is
            where it would lie without the hand, and only a held object is off it; an
            object beside the hand rests (False). docs/data.md, "Grasp labels".
        K: ``(3, 3)`` intrinsics.
        size: ``(H, W)``.
        skin: ``(3,)`` skin colour.
        light: ``(3,)`` unit direction towards the light.
        ambient: ambient light level.
        background: ``(3, H, W)`` picture.
    """

    hand_pose: torch.Tensor
    hand_shape: torch.Tensor
    hand_trans: torch.Tensor
    capsules: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    joints: torch.Tensor
    vertices: torch.Tensor
    obj: SceneObject | None
    grasped: bool
    K: torch.Tensor
    size: tuple[int, int]
    skin: torch.Tensor
    light: torch.Tensor
    ambient: float
    background: torch.Tensor

    def hand_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance of camera-frame points to the hand (the capsule union), negative inside.

        Args:
            points: ``(M, 3)`` camera-frame points.

        Returns:
            ``(M,)`` signed distances in metres (dtype of ``points``).

        Shape:
            ``(M, 3) -> (M,)``
        """
        a, b, r = self.capsules
        return capsule_sdf(points[None], a[None].to(points.dtype), b[None].to(points.dtype), r[None].to(points.dtype))[0]


@dataclass
class Rendering:
    """Per-pixel outputs of :func:`render_scene` (``H × W``)."""

    image: torch.Tensor  #: (3, H, W) float in [0, 1]
    segmentation: torch.Tensor  #: (H, W) int64, 0 bg, 1 hand, 2 object
    amodal_hand_mask: torch.Tensor  #: (H, W) bool
    depth: torch.Tensor  #: (H, W) float, 0 = background
    deoccluded_image: torch.Tensor | None  #: (3, H, W) the scene without the object, or None


def _random_rotation(generator: torch.Generator | None) -> torch.Tensor:
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    return quaternion_to_matrix(q / q.norm())


#: Hand orientation that shows the palm to the camera with the fingers up in the image (procedural/MANO
#: hand frame: fingers along -x, palm normal -y, thumb +z; camera frame: x right, y down, z forward).
PALM_VIEW = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def _view_rotation(generator: torch.Generator | None, view_range: float) -> torch.Tensor:
    """A rotation within ``view_range`` degrees of :data:`PALM_VIEW` (uniform axis, uniform angle),
    then a uniform in-plane rotation about the optical axis."""
    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    angle = torch.deg2rad(torch.tensor(_u(generator, 0.0, view_range), dtype=torch.float64))
    spin = torch.deg2rad(torch.tensor(_u(generator, -180.0, 180.0), dtype=torch.float64))
    tilt = axis_angle_to_matrix(axis / axis.norm() * angle)
    roll = axis_angle_to_matrix(torch.stack([spin.new_zeros(()), spin.new_zeros(()), spin]))
    return roll @ tilt @ PALM_VIEW


def _u(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))


def _place_grasped(obj: SceneObject, scene_sdf, joints: torch.Tensor, generator, penetration: float) -> SceneObject:
    j = {n: joints[JOINT_INDEX[n]] for n in ("wrist", "index_mcp", "middle_mcp", "ring_mcp", "little_mcp")}
    mcps = torch.stack([j["index_mcp"], j["middle_mcp"], j["ring_mcp"], j["little_mcp"]]).mean(0)
    palm = 0.35 * j["wrist"] + 0.65 * mcps
    normal = torch.linalg.cross(j["index_mcp"] - j["wrist"], j["little_mcp"] - j["wrist"])
    normal = normal / normal.norm()
    tips = joints[[JOINT_INDEX[f"{f}_tip"] for f in ("index", "middle", "ring", "little")]].mean(0)
    if float((tips - palm) @ normal) < 0:
        normal = -normal
    along = (mcps - j["wrist"]) / (mcps - j["wrist"]).norm()
    center = palm + along * _u(generator, -0.005, 0.02)
    R = _random_rotation(generator)
    jitter = _u(generator, 0.8, 1.2)
    if obj.kind != "mesh":  # a user's mesh keeps its real size
        obj = obj.scaled(jitter)
    surface = obj.surface_points(256, generator=generator).to(torch.float64) @ R.T  # (256, 3)
    lo, hi = 0.0, 0.15
    # Coarse-to-fine (64 then 256 surface samples): the closest position along the normal
    # without deep penetration.
    for steps, samples in ((16, surface[:64]), (12, surface)):
        offsets = torch.linspace(lo, hi, steps, dtype=torch.float64)
        pts = center + offsets[:, None, None] * normal + samples[None]  # (steps, samples, 3)
        ok = scene_sdf(pts.reshape(-1, 3)).reshape(steps, -1).amin(1) >= -penetration
        k = int(ok.nonzero().min()) if bool(ok.any()) else steps - 1
        lo, hi = float(offsets[max(k - 1, 0)]), float(offsets[k])
    return obj.posed(R, center + hi * normal)


def _place_apart(obj: SceneObject, scene_sdf, joints: torch.Tensor, generator, min_gap: float) -> SceneObject:
    R = _random_rotation(generator)
    center_h = joints.mean(0)
    reach = float((joints - center_h).norm(dim=-1).max())
    d = torch.randn(3, generator=generator, dtype=torch.float64)
    d = d / d.norm()
    surface = obj.surface_points(256, generator=generator).to(torch.float64) @ R.T
    dist = reach + obj.bounding_radius() * 0.5 + _u(generator, 0.0, 0.04)
    for _ in range(20):
        center = center_h + d * dist
        if float(scene_sdf(center + surface).min()) >= min_gap:
            break
        dist += 0.01
    return obj.posed(R, center)


def sample_scene(
    hand,
    image_size: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    hand_only_prob: float = 0.1,
    not_grasped_prob: float = 0.1,
    object_mesh: tuple[torch.Tensor, torch.Tensor] | None = None,
    penetration: float = 0.002,
    min_gap: float = 0.01,
    depth_range: tuple[float, float] = (0.35, 0.7),
    fill_range: tuple[float, float] = (0.6, 0.9),
    view_range: float | None = None,
) -> Scene:
    """Draw a random scene (see the module docstring).

    Args:
        hand: a :class:`hoimask.hand.ProceduralHand`.
        image_size: ``(H, W)``.
        generator: source of randomness (everything is drawn from it).
        hand_only_prob: probability of a scene without an object.
        not_grasped_prob: probability of an object away from the hand.
        object_mesh: ``(vertices (V, 3), faces (T, 3))`` of a user mesh (model
            frame, metres, centred) used instead of a random primitive.
        penetration: tolerated interpenetration of a grasped object, metres.
        min_gap: minimum hand–object distance of a not-grasped object.
        depth_range: distance of the scene centre from the camera, metres.
        fill_range: fraction of the image side the scene's bounding sphere spans.
        view_range: ``None`` (default): the hand's global rotation is uniform
            over all rotations. A number of degrees: the hand is turned at most
            that far out of :data:`PALM_VIEW` (palm to the camera, fingers up),
            then rolled uniformly about the optical axis — 180 is again uniform
            out of plane; smaller values give the viewpoints of a typical
            capture rig. Draws the same other random numbers either way.

    Returns:
        A :class:`Scene`.

    Shape:
        ``Scene.K (3, 3)``, ``Scene.joints (21, 3)``, ``Scene.background (3, H, W)``.
    """
    g = generator
    H, W = image_size
    f64 = torch.float64
    shape = hand.sample_shape(1, generator=g).to(f64)[0]
    u = _u(g, 0.0, 1.0)
    kind = "none" if u < hand_only_prob else "apart" if u < hand_only_prob + not_grasped_prob else "grasp"
    if kind == "grasp":
        amount = torch.tensor([_u(g, 0.25, 0.75)], dtype=f64)
        spread = torch.tensor([_u(g, -0.4, 0.6)], dtype=f64)
        pose = hand.grasp_pose(amount.to(hand.faces.device).to(torch.get_default_dtype()), spread=spread.float()).to(f64)[0]
        pose[1:] = pose[1:] + 0.04 * torch.randn((15, 3), generator=g, dtype=f64)
    else:
        pose = hand.sample_pose(1, generator=g, random_orient=False).to(f64)[0]
    pose[0] = matrix_to_axis_angle(_random_rotation(g) if view_range is None else _view_rotation(g, view_range))
    a, b, r = (x[0].to(f64) for x in hand.capsules(pose[None].float(), shape[None].float()))
    posed = hand(pose[None].float(), shape[None].float())
    joints, vertices = posed.joints[0].to(f64), posed.vertices[0]

    a32, b32, r32 = a[None].float(), b[None].float(), r[None].float()

    def hand_sdf(points: torch.Tensor) -> torch.Tensor:  # float32 is plenty for placement
        return capsule_sdf(points.float()[None], a32, b32, r32)[0].to(points.dtype)

    obj = None
    if kind != "none":
        if object_mesh is not None:
            obj = SceneObject(kind="mesh", size=torch.zeros(0), vertices=object_mesh[0].to(f64), faces=object_mesh[1].long())
        else:
            obj = sample_primitive(g)
            obj = SceneObject(kind=obj.kind, size=obj.size.to(f64))
        obj.texture = sample_texture(g)
        texture = obj.texture
        if kind == "grasp":
            obj = _place_grasped(obj, hand_sdf, joints, g, penetration)
        else:
            obj = _place_apart(obj, hand_sdf, joints, g, min_gap)
        obj.texture = texture
    # Bounding sphere of the scene, then the camera.
    pts = torch.cat([a, b])
    rad = torch.cat([r, r])
    if obj is not None:
        pts = torch.cat([pts, obj.translation[None]])
        rad = torch.cat([rad, rad.new_tensor([obj.bounding_radius()])])
    center = (pts.amin(0) + pts.amax(0)) / 2
    radius = float(((pts - center).norm(dim=-1) + rad).max())
    z = _u(g, *depth_range)
    focal = _u(g, *fill_range) * min(H, W) * z / (2 * radius)
    cx, cy = W / 2 + _u(g, -0.03, 0.03) * W, H / 2 + _u(g, -0.03, 0.03) * H
    K = torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=f64)
    offset = torch.tensor([_u(g, -0.08, 0.08) * W * z / focal, _u(g, -0.08, 0.08) * H * z / focal, z], dtype=f64)
    shift = offset - center
    light = torch.tensor([_u(g, -0.8, 0.8), _u(g, -0.8, 0.3), -1.0], dtype=f64)
    return Scene(
        hand_pose=pose,
        hand_shape=shape,
        hand_trans=shift,
        capsules=(a + shift, b + shift, r),
        joints=joints + shift,
        vertices=vertices + shift.float(),
        obj=None if obj is None else obj.posed(obj.rotation, obj.translation + shift),
        grasped=kind == "grasp",
        K=K,
        size=(H, W),
        skin=sample_skin_tone(g).to(f64),
        light=light / light.norm(),
        ambient=_u(g, 0.25, 0.5),
        background=random_background(H, W, generator=g, dtype=torch.float32),
    )


def _bounded_rays(dirs: torch.Tensor, center: torch.Tensor, radius: float) -> torch.Tensor:
    """Indices of the rays that hit a bounding sphere (the early-out)."""
    dc = dirs @ center
    return torch.nonzero(dc * dc - (center @ center - radius * radius) > 0).squeeze(1)


def _coarse_hits(K: torch.Tensor, H: int, W: int, a, b, r, block: int = 4) -> torch.Tensor:
    """Conservative per-pixel mask of the rays that may hit the capsules (a coarse pass).

    Rays through the centres of ``block × block`` pixel blocks are cast against
    capsules inflated by the block's angular half-width times their farthest
    distance; a fine ray deviates from its block's ray by at most that angle
    (a pixel subtends at most ``1/f`` radians), so every fine hit lies in a block
    whose coarse ray hits.
    """
    Hc, Wc = -(-H // block), -(-W // block)
    v, u = torch.meshgrid(
        torch.arange(Hc, dtype=K.dtype) * block + block / 2, torch.arange(Wc, dtype=K.dtype) * block + block / 2, indexing="ij"
    )
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], dim=-1)
    rays = pix @ torch.linalg.inv(K).T
    rays = rays / rays.norm(dim=-1, keepdim=True)
    alpha = 1.1 * (block / 2) * 2**0.5 / float(min(K[0, 0], K[1, 1]))
    far = float(torch.cat([a.norm(dim=-1), b.norm(dim=-1)]).max() + r.max())
    hit = torch.isfinite(intersect_capsules(rays, a, b, r + alpha * far)[0]).reshape(Hc, Wc)
    full = hit.repeat_interleave(block, 0).repeat_interleave(block, 1)[:H, :W]
    return full.reshape(-1)


def render_scene(scene: Scene, *, deoccluded: bool = False, coarse_culling: bool = True) -> Rendering:
    """Render a scene: colour, visible segmentation, amodal hand mask and depth.

    Args:
        scene: from :func:`sample_scene`.
        deoccluded: also render the same scene without the object.
        coarse_culling: skip the rays of 4×4 blocks whose (conservatively
            inflated) coarse ray misses the hand; the result is identical, only faster.

    Returns:
        A :class:`Rendering`.

    Shape:
        image ``(3, H, W)``; segmentation, amodal_hand_mask, depth ``(H, W)``.
    """
    H, W = scene.size
    check_shape(scene.K, "3 3", name="scene.K")
    dt = torch.float32  # rendering precision: float32 is exact enough for pixels and twice as fast
    dirs = camera_rays(scene.K.to(dt), H, W)  # (R, 3)
    n_rays = dirs.shape[0]
    inf = torch.full((n_rays,), float("inf"), dtype=dt)
    a, b, r = (x.to(dt) for x in scene.capsules)
    pts = torch.cat([a, b])
    hc = (pts.amin(0) + pts.amax(0)) / 2
    hr = float(((pts - hc).norm(dim=-1) + torch.cat([r, r])).max())
    sel_h = _bounded_rays(dirs, hc, hr)
    if coarse_culling:
        sel_h = sel_h[_coarse_hits(scene.K.to(dt), H, W, a, b, r)[sel_h]]
    t_hand = inf.clone()
    cap_idx = torch.zeros(n_rays, dtype=torch.int64)
    t_h, idx = intersect_capsules(dirs[sel_h], a, b, r)
    t_hand[sel_h], cap_idx[sel_h] = t_h, idx
    t_obj = inf.clone()
    if scene.obj is not None:
        sel_o = _bounded_rays(dirs, scene.obj.translation.to(dt), scene.obj.bounding_radius() * 1.001)
        t_obj[sel_o] = scene.obj.intersect(dirs[sel_o])
    hand_hit = torch.isfinite(t_hand)
    obj_hit = torch.isfinite(t_obj)
    hand_vis = hand_hit & (t_hand < t_obj)
    obj_vis = obj_hit & ~hand_vis

    def hand_colors(which: torch.Tensor) -> torch.Tensor:
        p = dirs[which] * t_hand[which, None]
        k = cap_idx[which]
        ab = b[k] - a[k]
        s = (((p - a[k]) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
        nrm = p - (a[k] + s[:, None] * ab)
        nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        variation = 1 + 0.05 * torch.sin(180 * p[:, :1]) * torch.sin(170 * p[:, 1:2] + 3 * p[:, 2:3])
        albedo = (scene.skin.to(dt)[None] * variation).clamp(0, 1)
        return shade(albedo, nrm, dirs[which], scene.light.to(dt), ambient=scene.ambient, specular=0.08, shininess=12.0)

    flat = scene.background.to(dt).reshape(3, -1).T.clone()  # (R, 3)
    image = flat.clone()
    hand_rgb = hand_colors(hand_hit)  # shaded once for the picture and its de-occluded twin
    image[hand_vis] = hand_rgb[hand_vis[hand_hit]]
    if obj_vis.any():
        p = dirs[obj_vis] * t_obj[obj_vis, None]
        nrm = sdf_normals(scene.obj.sdf, p)
        albedo = object_albedo(scene.obj.to_local(p), scene.obj.texture).to(dt)
        image[obj_vis] = shade(albedo, nrm, dirs[obj_vis], scene.light.to(dt), ambient=scene.ambient)
    seg = torch.zeros(n_rays, dtype=torch.int64)
    seg[hand_vis], seg[obj_vis] = 1, 2
    t_near = torch.where(hand_vis, t_hand, torch.where(obj_vis, t_obj, torch.zeros_like(t_hand)))
    depth = t_near * dirs[:, 2]
    deocc = None
    if deoccluded:
        deocc = flat.clone()
        deocc[hand_hit] = hand_rgb
        deocc = deocc.T.reshape(3, H, W).float()
    return Rendering(
        image=image.T.reshape(3, H, W).float(),
        segmentation=seg.reshape(H, W),
        amodal_hand_mask=hand_hit.reshape(H, W),
        depth=depth.reshape(H, W).float(),
        deoccluded_image=deocc,
    )

