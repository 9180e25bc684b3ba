"""HandMIM's pre-training losses (§2.2–2.4): ``L = L_pose + L_patch + L_recon`` (eq. 10).

* :func:`pose_alignment_loss` — ``L_pose`` (eqs. 3, 4, 6): the projected class
  token is read as pseudo key-points, moved back to the original image with
  the inverse of each view's augmentation, and the student's distribution of
  one view is trained on the teacher's of the other view (cross-view).
* :func:`patch_distillation_loss` — ``L_patch`` (eq. 7, iBOT's MIM loss): at
  the masked patches the student (masked view) is trained on the teacher's
  distribution of the same view and position ("parallel view").
* :func:`multilevel_reconstruction_loss` — ``L_recon`` (eq. 9): L1 between
  the pyramid decoder's image (:class:`hoimask.nn.PyramidPixelDecoder`) and
  the input, on the masked patches only.

Distributions follow DINO / iBOT: the student's is ``softmax(s / τ_s)``, the
teacher's target ``softmax((t − c) / τ_t)`` with the centre ``c`` and ``τ_t``
of :class:`hoimask.nn.TeacherCentering`; targets carry no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hoimask._checks import (
    ShapeError,
    check_dtype,
    check_int,
    check_positive,
    check_shape,
    check_size,
)
from hoimask.losses._reduce import masked_mean

__all__ = [
    "normalized_affine",
    "align_pseudo_keypoints",
    "pose_alignment_loss",
    "patch_distillation_loss",
    "multilevel_reconstruction_loss",
]


def _unit_frame(size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """``(3, 3)`` map from pixel coordinates of an ``(H, W)`` image to ``[-1, 1]`` (``grid_sample``, ``align_corners=False``)."""
    H, W = size
    return like.new_tensor([[2.0 / W, 0.0, -1.0], [0.0, 2.0 / H, -1.0], [0.0, 0.0, 1.0]])


def normalized_affine(
    affine: torch.Tensor, source_size: tuple[int, int], target_size: tuple[int, int]
) -> torch.Tensor:
    """A pixel affine map from a ``source_size`` image to a ``target_size`` image, in normalised coordinates.

    Pixel ``(u, v)`` of an ``(H, W)`` image has normalised coordinates
    ``(2u/W − 1, 2v/H − 1)`` (the image spans ``[-1, 1]²``; the library's
    continuous pixel convention, as ``F.grid_sample(align_corners=False)``).
    Returns ``N_target · A · N_source⁻¹``.

    Args:
        affine: ``(..., 3, 3)`` map of pixel coordinates, e.g.
            :class:`hoimask.data.TwoViews`' view → original ``affine_a``.
        source_size: ``(H, W)`` of the image ``affine`` maps from (the view).
        target_size: ``(H, W)`` of the image it maps to (the original).

    Returns:
        ``(..., 3, 3)`` in ``affine``'s dtype.

    Shape:
        ``(..., 3, 3)`` -> ``(..., 3, 3)``.

    Example:
        >>> half = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 1]])   # a 32 px view of a 64 px image
        >>> normalized_affine(half, (32, 32), (64, 64)).diagonal().tolist()
        [1.0, 1.0, 1.0]
    """
    fn = "normalized_affine"
    check_shape(affine, "... 3 3", name="affine", fn=fn)
    source = _unit_frame(check_size(source_size, name="source_size", fn=fn), affine)
    target = _unit_frame(check_size(target_size, name="target_size", fn=fn), affine)
    return target @ affine @ torch.linalg.inv(source)


def align_pseudo_keypoints(
    tokens: torch.Tensor, affine: torch.Tensor, *, view_size: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """Read ``(B, K)`` projected class tokens as ``K/2`` 2D points of the view and move them to the original image.

    HandMIM eq. (4), ``τ' = 1/γ · (R⁻¹ τ + (a, b))``, is the inverse of the
    view's augmentation (eq. 3). With ``affine`` the general view → original
    pixel map, the aligned points are ``τ' = Â[:2, :2] τ + Â[:2, 2]`` where
    ``Â = normalized_affine(affine, view_size, image_size)`` — the same as
    eq. (4) when the linear part is a rotation times a scale.

    Choices where the paper is silent (documented in docs/losses.md):

    * **Layout.** The ``K`` numbers are reshaped row-major to ``(K/2, 2)``:
      ``(x₀, y₀, x₁, y₁, …)`` ("pseudo keypoints with size [128, 2]", §3.1).
    * **Units.** The points are normalised image coordinates (the view spans
      ``[-1, 1]²``; :func:`normalized_affine`), so a crop's offset ``(a, b)``
      and scale ``γ`` are of the order of the latent values instead of pixels.

    Args:
        tokens: ``(B, K)`` head outputs of the class token, ``K`` even.
        affine: ``(B, 3, 3)`` view → original pixel maps.
        view_size: ``(H, W)`` of the view.
        image_size: ``(H, W)`` of the original image.

    Returns:
        ``(B, K)`` aligned points, flattened in the same layout.

    Shape:
        ``(B, K)``, ``(B, 3, 3)`` -> ``(B, K)``.

    Example:
        >>> same = torch.eye(3).expand(1, 3, 3)
        >>> align_pseudo_keypoints(torch.tensor([[0.5, -0.5]]), same, view_size=(8, 8), image_size=(8, 8)).tolist()
        [[0.5, -0.5]]
    """
    return _align(tokens, affine, view_size, image_size, "tokens", "affine", "align_pseudo_keypoints")


def _align(tokens, affine, view_size, image_size, name, affine_name, fn, dims=None) -> torch.Tensor:
    dims = check_shape(tokens, "B K", name=name, dims=dims, fn=fn)
    if dims["K"] % 2:
        raise ShapeError(f"{fn}(): argument '{name}' must have an even size K (K/2 points of 2 coordinates), "
                         f"got shape {tuple(tokens.shape)}")
    check_shape(affine, "B 3 3", name=affine_name, dims=dims, fn=fn)
    view_size = check_size(view_size, name="view_size", fn=fn)
    image_size = check_size(image_size, name="image_size", fn=fn)
    A = normalized_affine(affine.to(torch.float64), view_size, image_size).to(tokens.dtype)  # (B, 3, 3)
    points = tokens.unflatten(-1, (-1, 2))  # (B, K/2, 2)
    aligned = points @ A[:, :2, :2].transpose(1, 2) + A[:, None, :2, 2]  # (B, K/2, 2)
    return aligned.flatten(-2)  # (B, K)


def _cross_entropy(target: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``−Σ p · log softmax(s / τ_s)`` over the last dimension."""
    return -(target * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1)


def _center(center: torch.Tensor | None, k: int, fn: str) -> torch.Tensor | None:
    if center is not None and (not isinstance(center, torch.Tensor) or center.numel() != k):
        check_shape(center, "1 K", name="center", dims={"K": k}, fn=fn)  # raises the typed error
    return None if center is None else center.reshape(-1)


def _targets(teacher: torch.Tensor, center: torch.Tensor | None, temperature: float) -> torch.Tensor:
    logits = teacher.detach()
    if center is not None:
        logits = logits - center.to(logits.dtype)
    return F.softmax(logits / temperature, dim=-1)


def pose_alignment_loss(
    student_a: torch.Tensor,
    student_b: torch.Tensor,
    teacher_a: torch.Tensor,
    teacher_b: torch.Tensor,
    affine_a: torch.Tensor,
    affine_b: torch.Tensor,
    *,
    view_size: tuple[int, int],
    image_size: tuple[int, int],
    center: torch.Tensor | None = None,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.07,
) -> torch.Tensor:
    """HandMIM's ``L_pose`` (eq. 6): cross-view distillation of pose-aligned class tokens.

    Every projected class token is aligned to the original image
    (:func:`align_pseudo_keypoints`, eqs. 3–4). With ``U, V`` the teacher's
    aligned outputs of views a and b turned into targets
    ``softmax((· − center) / τ_t)`` and ``Ũ, Ṽ`` the student's aligned outputs
    turned into ``softmax(· / τ_s)``::

        L_pose = −U log Ṽ − V log Ũ

    summed over the two terms as eq. (6) writes it and averaged over the
    batch. Centre the teacher with the **aligned** outputs
    (``TeacherCentering.update(align_pseudo_keypoints(teacher, affine, ...))``).
    The teacher receives no gradient.

    Args:
        student_a: ``(B, K)`` student head output of the class token of the masked view a.
        student_b: ``(B, K)`` the same for view b.
        teacher_a: ``(B, K)`` teacher head output of the class token of the full view a.
        teacher_b: ``(B, K)`` the same for view b.
        affine_a: ``(B, 3, 3)`` view a → original pixel map (:func:`hoimask.data.two_views`).
        affine_b: ``(B, 3, 3)`` view b → original pixel map.
        view_size: ``(H, W)`` of both views.
        image_size: ``(H, W)`` of the original image.
        center: ``(K,)`` or ``(1, K)`` teacher centre, or ``None``.
        student_temperature: ``τ_s`` (0.1).
        teacher_temperature: ``τ_t`` (0.04 → 0.07 during warm-up: ``TeacherCentering.teacher_temperature(step)``).

    Returns:
        Scalar loss.

    Raises:
        ShapeError: shapes disagree or ``K`` is odd.
        ValueRangeError: a temperature is not > 0.

    Shape:
        four ``(B, K)``, two ``(B, 3, 3)`` -> ``()``.

    Example:
        >>> eye = torch.eye(3).expand(2, 3, 3)
        >>> s, t = torch.zeros(2, 8), torch.randn(2, 8)
        >>> pose_alignment_loss(s, s, t, t, eye, eye, view_size=(8, 8), image_size=(8, 8)).shape
        torch.Size([])
    """
    fn = "pose_alignment_loss"
    check_positive(student_temperature, name="student_temperature", fn=fn)
    check_positive(teacher_temperature, name="teacher_temperature", fn=fn)
    dims: dict[str, int] = {}
    s_a = _align(student_a, affine_a, view_size, image_size, "student_a", "affine_a", fn, dims)  # (B, K)
    s_b = _align(student_b, affine_b, view_size, image_size, "student_b", "affine_b", fn, dims)
    t_a = _align(teacher_a, affine_a, view_size, image_size, "teacher_a", "affine_a", fn, dims)
    t_b = _align(teacher_b, affine_b, view_size, image_size, "teacher_b", "affine_b", fn, dims)
    c = _center(center, dims["K"], fn)
    u, v = _targets(t_a, c, teacher_temperature), _targets(t_b, c, teacher_temperature)  # (B, K) targets
    return (_cross_entropy(u, s_b, student_temperature) + _cross_entropy(v, s_a, student_temperature)).mean()


def patch_distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor,
    *,
    center: torch.Tensor | None = None,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.07,
) -> torch.Tensor:
    """HandMIM's ``L_patch`` (eq. 7) = iBOT's masked-token self-distillation.

    At every masked patch the student's ``softmax(s / τ_s)`` (masked input) is
    trained on the teacher's ``softmax((t − center) / τ_t)`` of the same view
    and position (full input):
    ``−Σ_k p_k log q_k``, averaged over the masked patches of each sample, then
    over samples and views — iBOT's reduction (a sample with no masked patch
    counts as 0). Eq. (7) writes the two views' terms as a sum; this is their
    mean (multiply by the number of views for the sum).

    Args:
        student: ``(V, B, N, K)`` (or ``(B, N, K)``: one view) student head outputs of the patch tokens.
        teacher: the teacher's, same shape (no gradient flows to it).
        mask: ``(V, B, N)`` bool, ``True`` = masked in the student's input.
        center: ``(K,)`` or ``(1, K)`` teacher centre (iBOT keeps one for patches), or ``None``.
        student_temperature: ``τ_s`` (0.1).
        teacher_temperature: ``τ_t`` (iBOT: 0.04 → 0.07).

    Returns:
        Scalar loss; 0, still connected to ``student``, when nothing is masked.

    Raises:
        ShapeError: shapes disagree.
        DTypeError: ``mask`` is not bool.
        ValueRangeError: a temperature is not > 0.

    Shape:
        ``(..., N, K)``, ``(..., N, K)``, ``(..., N)`` -> ``()``.

    Example:
        >>> t = torch.randn(2, 3, 4, 8)
        >>> mask = torch.ones(2, 3, 4, dtype=torch.bool)
        >>> patch_distillation_loss(t, t, mask).shape
        torch.Size([])
    """
    fn = "patch_distillation_loss"
    check_positive(student_temperature, name="student_temperature", fn=fn)
    check_positive(teacher_temperature, name="teacher_temperature", fn=fn)
    dims = check_shape(student, "... N K", name="student", fn=fn)
    if not isinstance(teacher, torch.Tensor) or teacher.shape != student.shape:
        check_shape(teacher, "... N K", name="teacher", dims=dims, fn=fn)
        raise ShapeError(f"{fn}(): argument 'teacher' expected the shape of 'student' {tuple(student.shape)}, "
                         f"got {tuple(teacher.shape)}")
    if not isinstance(mask, torch.Tensor) or mask.shape != student.shape[:-1]:
        check_shape(mask, "... N", name="mask", dims=dims, fn=fn)
        raise ShapeError(f"{fn}(): argument 'mask' expected shape {tuple(student.shape[:-1])} (the student's "
                         f"without K), got {tuple(mask.shape)}")
    check_dtype(mask, torch.bool, name="mask", fn=fn)
    c = _center(center, dims["K"], fn)
    target = _targets(teacher, c, teacher_temperature)  # (..., N, K)
    ce = _cross_entropy(target, student, student_temperature)  # (..., N)
    m = mask.to(ce.dtype)
    per_sample = (ce * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)  # (...)
    return per_sample.mean()


def multilevel_reconstruction_loss(
    pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """HandMIM's ``L_recon`` (eq. 9): ``M ⊙ ‖T⁴ − x‖₁``, the L1 error on the masked patches only.

    The mean absolute error over the pixels (and channels) of the masked
    patches of the whole batch; unmasked patches do not count, whatever
    ``pred`` holds there.

    Args:
        pred: ``(B, C, H, W)`` reconstruction ``T⁴`` (:class:`hoimask.nn.PyramidPixelDecoder`).
        image: ``(B, C, H, W)`` the student's input image (as the encoder saw it, normalised).
        mask: ``(B, N)`` bool token mask, ``True`` = masked, ``N = (H/P)(W/P)``, row-major.
        patch_size: P.

    Returns:
        Scalar loss; 0, still connected to ``pred``, when nothing is masked.

    Raises:
        ShapeError: shapes disagree or sides are not multiples of P.
        DTypeError: ``mask`` is not bool.

    Shape:
        ``(B, C, H, W)``, ``(B, C, H, W)``, ``(B, N)`` -> ``()``.

    Example:
        >>> mask = torch.tensor([[True, False, False, False]])
        >>> multilevel_reconstruction_loss(torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), mask, 2)
        tensor(1.)
    """
    fn = "multilevel_reconstruction_loss"
    dims = check_shape(pred, "B C H W", name="pred", fn=fn)
    check_shape(image, "B C H W", name="image", dims=dims, fn=fn)
    check_int(patch_size, name="patch_size", low=1, fn=fn)
    H, W = dims["H"], dims["W"]
    if H % patch_size or W % patch_size:
        raise ShapeError(f"{fn}(): image sides ({H}, {W}) must be multiples of patch_size={patch_size}")
    gh, gw = H // patch_size, W // patch_size
    check_shape(mask, "B N", name="mask", dims={"B": dims["B"], "N": gh * gw}, fn=fn)
    check_dtype(mask, torch.bool, name="mask", fn=fn)
    pixels = mask.reshape(-1, 1, gh, 1, gw, 1).expand(-1, 1, gh, patch_size, gw, patch_size)
    pixels = pixels.reshape(-1, 1, H, W)  # (B, 1, H, W): True on the masked patches
    error = (pred - image.to(pred.dtype)).abs()  # (B, C, H, W)
    return masked_mean(error, pixels)
