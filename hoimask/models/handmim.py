"""HandMIM pre-training model (HandMIM §2, Fig. 2, eq. 10): a ViT student and its EMA teacher on two views.

::

    image ─ two_views ─> view a, view b (+ view → image affines)
      ├─ masked views ─ student ─┬─ class token ─ head ─ align ── L_pose (cross-view)
      │   (MaskTokenEncoder)     ├─ patch tokens ─ head ──────── L_patch (masked patches)
      │                          └─ blocks 3,6,9,12 ─ pyramid ── L_recon (masked pixels)
      └─ full views ─ teacher (EMA of the student, no gradient) ─ head ─ centred, sharpened targets

``L = w_pose L_pose + w_patch L_patch + w_recon L_recon`` (eq. 10: every
weight 1); ``use_pose`` / ``use_patch`` / ``use_recon`` switch the terms off
(Table 5). After every optimiser step call :meth:`HandMIM.update_teacher`.
The parts are :mod:`hoimask.nn` (``MaskTokenEncoder``, ``DINOHead``,
``TeacherCentering``, ``PyramidPixelDecoder``, ``make_teacher`` /
``update_teacher``), :mod:`hoimask.losses.handmim` and
:func:`hoimask.data.two_views`; docs/models.md ("HandMIM") lists the choices
made where the paper is silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hoimask._checks import DTypeError, check_dtype, check_int, check_shape
from hoimask.losses.handmim import (
    align_pseudo_keypoints,
    multilevel_reconstruction_loss,
    patch_distillation_loss,
    pose_alignment_loss,
)
from hoimask.masking import RandomMasker
from hoimask.models._batch import get_image
from hoimask.models.handmim_config import HandMIMConfig, resolve_handmim_preset
from hoimask.nn import (
    DINOHead,
    MaskTokenEncoder,
    PixelNormalization,
    PyramidPixelDecoder,
    TeacherCentering,
    ViTEncoder,
    pyramid_tap_layers,
)
from hoimask.nn.ema import make_teacher, teacher_momentum
from hoimask.nn.ema import update_teacher as ema_update
from hoimask.nn.pixel_norm import check_unit_range

__all__ = ["HandMIM", "VIEW_KEYS"]

#: Batch keys of precomputed views (:class:`hoimask.data.TwoViewTransform`); when all are present they are used.
VIEW_KEYS: tuple[str, ...] = ("view_a", "view_b", "affine_a", "affine_b")


class _Network(nn.Module):
    """The student's (and, copied, the teacher's) backbone and projection head."""

    def __init__(self, backbone: MaskTokenEncoder, head: DINOHead | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator`` if it is a CPU one (or None); else a CPU generator seeded from one draw of it."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """``−Σ p log p`` over the last dimension (0 log 0 = 0)."""
    return -(probs * probs.clamp(min=1e-30).log()).sum(-1)


class HandMIM(nn.Module):
    """HandMIM: masked-image self-distillation with pose-aware alignment and multi-level pixel reconstruction.

    Build it with :meth:`from_preset` (``"tiny"`` for CPUs; ``"small"``,
    ``"base"``, ``"large"``: the paper's ViT-S/B/L at 224 px) or from a
    :class:`~hoimask.models.HandMIMConfig`.

    The student is a :class:`~hoimask.nn.MaskTokenEncoder` (masked patches
    become a learned mask token; all N tokens run) with a
    :class:`~hoimask.nn.DINOHead` shared by the class and patch tokens; the
    teacher is a frozen copy (``requires_grad=False``) moved by
    :meth:`update_teacher`. The teacher's centres, and the number of EMA steps
    taken (``ema_steps``, which drives the temperature warm-up), are
    persistent buffers: they resume with the checkpoint.

    Args:
        config: the configuration (``None``: the ``base`` preset, ViT-B/16).
        masker: optional masker overriding ``config.mask_ratio`` (any
            :mod:`hoimask.masking` masker; it is called once per view and
            sample, without guidance, since the views are not the labelled image).

    Shape:
        batch ``image (B, 3, H, W)`` -> ``{"loss": (), "terms": {"pose", "patch", "recon": ()},
        "target_entropy": {"pose", "patch": ()}, "predictions": {...}}``.

    Example:
        >>> model = HandMIM.from_preset("tiny", img_size=32, depth=4, embed_dim=32, num_heads=2,
        ...                             head_hidden_dim=32, head_bottleneck_dim=16, head_out_dim=16,
        ...                             decoder_channels=(8, 8, 8, 8))
        >>> out = model({"image": torch.rand(2, 3, 48, 48)}, generator=torch.Generator().manual_seed(0))
        >>> sorted(out["terms"]), out["loss"].shape
        (['patch', 'pose', 'recon'], torch.Size([]))
    """

    ema_steps: torch.Tensor

    def __init__(self, config: HandMIMConfig | None = None, *, masker: Any = None) -> None:
        super().__init__()
        cfg = config or HandMIMConfig()
        if not isinstance(cfg, HandMIMConfig):
            raise DTypeError(f"HandMIM(): argument 'config' expected a HandMIMConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.pixel_norm = PixelNormalization(cfg.pixel_mean, cfg.pixel_std)
        encoder = ViTEncoder(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
                             depth=cfg.depth, num_heads=cfg.num_heads)
        distill = cfg.use_pose or cfg.use_patch
        head = (DINOHead(cfg.embed_dim, cfg.head_out_dim, hidden_dim=cfg.head_hidden_dim,
                         bottleneck_dim=cfg.head_bottleneck_dim, num_layers=cfg.head_layers,
                         norm_last_layer=cfg.norm_last_layer) if distill else None)
        self.student = _Network(MaskTokenEncoder(encoder), head)
        self.teacher = make_teacher(self.student) if distill else None
        self.taps = pyramid_tap_layers(cfg.depth, len(cfg.decoder_channels)) if cfg.use_recon else None
        self.decoder = (PyramidPixelDecoder(cfg.embed_dim, patch_size=cfg.patch_size,
                                            num_taps=len(cfg.decoder_channels), channels=cfg.decoder_channels)
                        if cfg.use_recon else None)
        centering = dict(momentum=cfg.center_momentum, teacher_temperature=cfg.teacher_temperature,
                         warmup_teacher_temperature=cfg.warmup_teacher_temperature,
                         warmup_steps=cfg.temperature_warmup_steps, student_temperature=cfg.student_temperature)
        # iBOT keeps one centre for the class token and one for the patch tokens
        self.pose_centering = TeacherCentering(cfg.head_out_dim, **centering) if cfg.use_pose else None
        self.patch_centering = TeacherCentering(cfg.head_out_dim, **centering) if cfg.use_patch else None
        low, high = cfg.mask_ratio
        self.masker = masker if masker is not None else RandomMasker(low if low == high else (low, high))
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_preset(cls, name: str = "tiny", *, masker: Any = None, **overrides) -> HandMIM:
        """Build a preset (``"tiny"``, ``"small"``, ``"base"``, ``"large"``) with overrides of :class:`HandMIMConfig`.

        Example:
            ``HandMIM.from_preset("tiny", use_recon=False, weights={"pose": 0.5})``.
        """
        return cls(resolve_handmim_preset(name, overrides), masker=masker)

    @property
    def encoder(self) -> ViTEncoder:
        """The student's plain encoder (what fine-tuning loads; :meth:`encoder_state_dict`)."""
        return self.student.backbone.encoder

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The student encoder's weights in timm/MAE key format (load with ``PoseRegressionModel.load_encoder``)."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def reset_teacher(self) -> None:
        """Make the teacher a fresh frozen copy of the student (after loading weights into the student)."""
        if self.teacher is not None:
            self.teacher = make_teacher(self.student)

    # ------------------------------------------------------------------ teacher
    @torch.no_grad()
    def update_teacher(self, step: int | None = None) -> float:
        """One EMA step ``θ_t ← m·θ_t + (1 − m)·θ_s`` with ``m = teacher_momentum(step, total_steps)``.

        Call it after every optimiser step. ``ema_steps`` becomes ``step + 1``
        (it drives the teacher-temperature warm-up and resumes with the checkpoint).

        Args:
            step: the optimiser step just taken, from 0 (``None``: ``ema_steps``).

        Returns:
            The momentum used (1.0 when no loss needs a teacher).
        """
        step = int(self.ema_steps) if step is None else check_int(step, name="step", low=0, fn="HandMIM.update_teacher")
        momentum = 1.0
        if self.teacher is not None:
            momentum = teacher_momentum(step, self.config.total_steps, base=self.config.teacher_momentum)
            ema_update(self.teacher, self.student, momentum)
        self.ema_steps.fill_(step + 1)
        return momentum

    # ------------------------------------------------------------------ inputs
    def make_views(
        self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's two views and their view → image pixel maps.

        The batch's own ``view_a``, ``view_b``, ``affine_a``, ``affine_b`` when
        it has all four (:class:`hoimask.data.TwoViewTransform` in the data
        pipeline); else drawn here with :func:`hoimask.data.two_views`
        (``config.augmentations``, on the CPU, view a then view b of each
        sample in turn, from ``generator``; a CUDA generator seeds a CPU one
        with one draw).

        Args:
            batch: needs ``image`` ``(B, 3, H, W)``, RGB in ``[0, 1]``.
            generator: RNG of the augmentations.

        Returns:
            ``views (2, B, 3, S, S)`` RGB in ``[0, 1]`` (``S = config.img_size``) on the image's
            device, ``affines (2, B, 3, 3)`` float64.
        """
        fn = "HandMIM.make_views"
        image = get_image(batch, fn)
        B = image.shape[0]
        if all(isinstance(batch.get(k), torch.Tensor) for k in VIEW_KEYS):
            dims = check_shape(batch["view_a"], "B 3 H W", name="batch['view_a']", dims={"B": B}, fn=fn)
            check_shape(batch["view_b"], "B 3 H W", name="batch['view_b']", dims=dims, fn=fn)
            for key in ("affine_a", "affine_b"):
                check_shape(batch[key], "B 3 3", name=f"batch[{key!r}]", dims=dims, fn=fn)
            views = torch.stack([batch["view_a"], batch["view_b"]])
            affines = torch.stack([batch["affine_a"], batch["affine_b"]]).to(torch.float64)
            return views, affines
        from hoimask.data.views import HANDMIM_VIEWS, two_views

        augmentations = self.config.augmentations or HANDMIM_VIEWS
        size = self.config.img_size
        g = _cpu_generator(generator)
        source = image.detach().to("cpu", torch.float32)
        views, affines = [], []
        for i in range(B):
            pair = two_views(source[i], size, augmentations=augmentations, generator=g)
            views.append(torch.stack([pair.view_a, pair.view_b]))  # (2, 3, S, S)
            affines.append(torch.stack([pair.affine_a, pair.affine_b]))  # (2, 3, 3)
        views_t = torch.stack(views, dim=1).to(image.device, image.dtype)  # (2, B, 3, S, S)
        return views_t, torch.stack(affines, dim=1).to(image.device)  # (2, B, 3, 3)

    def draw_masks(
        self, batch_size: int, grid_size: tuple[int, int], *, device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``(2, B, N)`` bool masks of the student's views, ``True`` = masked.

        The masker is called once per view and sample, so with a ratio range
        every view of every sample draws its own ratio (iBOT draws per image;
        :class:`~hoimask.masking.RandomMasker` draws once per call).
        """
        check_int(batch_size, name="batch_size", low=1, fn="HandMIM.draw_masks")
        masks = [self.masker(1, grid_size, device=device, generator=generator).mask[0] for _ in range(2 * batch_size)]
        return torch.stack(masks).reshape(2, batch_size, -1)  # (2, B, N)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        masks: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Two views, masked student, full-view teacher, the three losses of eq. (10).

        In training mode the teacher centres move after the losses (``c ← m c + (1 − m) mean``).

        Args:
            batch: ``image`` ``(B, 3, H, W)``, RGB in ``[0, 1]`` (the model
                normalises the views), optionally with precomputed views (:data:`VIEW_KEYS`).
            generator: RNG of the views and the masks (views first).
            masks: ``(2, B, N)`` bool student masks to use instead of drawing them.

        Returns:
            ``{"loss": (), "terms": {name: ()}, "target_entropy": {name: ()}, "predictions": {...}}``.
            ``terms`` holds the switched-on terms (unweighted); ``target_entropy``
            the mean entropy of the teacher targets of ``pose`` / ``patch`` — the
            floor of those cross-entropies (a term minus its floor is the KL
            divergence the student can remove). ``predictions``: ``views``
            ``(2, B, 3, S, S)``, ``affines`` ``(2, B, 3, 3)``, ``masks`` ``(2, B, N)``,
            ``reconstruction`` ``(2, B, 3, S, S)`` (normalised pixels, with ``recon``).
        """
        fn = "HandMIM.forward"
        image = get_image(batch, fn)
        check_unit_range(image, name="batch['image']", fn=fn)  # the views are clamped: check the source
        B, _, H, W = image.shape
        views, affines = self.make_views(batch, generator=generator)  # (2, B, 3, S, S), (2, B, 3, 3)
        S = tuple(views.shape[-2:])
        x = self.pixel_norm(views.flatten(0, 1), name="views", fn=fn)  # (2B, 3, S, S)
        grid = self.encoder.patch_embed.grid_size(*S)
        N = grid[0] * grid[1]
        if masks is None:
            masks = self.draw_masks(B, grid, device=image.device, generator=generator)
        check_shape(masks, "2 B N", name="masks", dims={"B": B, "N": N}, fn=fn)
        check_dtype(masks, torch.bool, name="masks", fn=fn)
        flat_masks = masks.flatten(0, 1)  # (2B, N)
        s_out = self.student.backbone(x, flat_masks, return_layers=self.taps)  # tokens (2B, N, D)
        terms: dict[str, torch.Tensor] = {}
        entropy: dict[str, torch.Tensor] = {}
        preds: dict[str, Any] = {"views": views, "affines": affines, "masks": masks}
        if self.teacher is not None:
            with torch.no_grad():
                t_out = self.teacher.backbone(x)  # full views: (2B, N, D)
            step = int(self.ema_steps)
            if self.pose_centering is not None:
                self._pose_term(s_out.cls_token, t_out.cls_token, affines, S, (H, W), step, terms, entropy)
            if self.patch_centering is not None:
                self._patch_term(s_out.tokens, t_out.tokens, masks, step, terms, entropy)
        if self.decoder is not None:
            pred = self.decoder(list(s_out.layers), grid)  # (2B, 3, S, S)
            terms["recon"] = multilevel_reconstruction_loss(pred, x, flat_masks, self.config.patch_size)
            preds["reconstruction"] = pred.unflatten(0, (2, B))
        w = self.config.weights
        loss = torch.stack([w[k] * v.float() for k, v in terms.items()]).sum()
        return {"loss": loss, "terms": terms, "target_entropy": entropy, "predictions": preds}

    def _pose_term(self, s_cls, t_cls, affines, view_size, image_size, step, terms, entropy) -> None:
        """``L_pose`` (eq. 6) on the aligned class-token outputs; the class centre moves with the aligned teacher."""
        centering = self.pose_centering
        B = affines.shape[1]
        s = self.student.head(s_cls).unflatten(0, (2, B))  # (2, B, K)
        with torch.no_grad():
            t = self.teacher.head(t_cls).unflatten(0, (2, B))
        tau = centering.teacher_temperature(step)
        sizes = dict(view_size=view_size, image_size=image_size)
        terms["pose"] = pose_alignment_loss(
            s[0], s[1], t[0], t[1], affines[0], affines[1], center=centering.center,
            student_temperature=centering.student_temperature, teacher_temperature=tau, **sizes,
        )
        with torch.no_grad():
            aligned = torch.stack([align_pseudo_keypoints(t[v], affines[v], **sizes) for v in range(2)])  # (2, B, K)
            entropy["pose"] = _entropy(centering(aligned.float(), step=step)).sum(0).mean()  # H(U) + H(V)
            if self.training:
                centering.update(aligned)

    def _patch_term(self, s_tokens, t_tokens, masks, step, terms, entropy) -> None:
        """``L_patch`` (eq. 7) at the masked patches; the patch centre moves with every teacher patch token."""
        centering = self.patch_centering
        s = self.student.head(s_tokens).unflatten(0, masks.shape[:2])  # (2, B, N, K)
        with torch.no_grad():
            t = self.teacher.head(t_tokens).unflatten(0, masks.shape[:2])
        tau = centering.teacher_temperature(step)
        terms["patch"] = patch_distillation_loss(
            s, t, masks, center=centering.center, student_temperature=centering.student_temperature,
            teacher_temperature=tau,
        )
        with torch.no_grad():
            h = _entropy(centering(t.float(), step=step))  # (2, B, N)
            m = masks.to(h.dtype)
            entropy["patch"] = ((h * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()  # the loss's reduction
            if self.training:
                centering.update(t)

    def extra_repr(self) -> str:
        cfg = self.config
        on = [k for k in ("pose", "patch", "recon") if getattr(cfg, f"use_{k}")]
        return f"img_size={cfg.img_size}, embed_dim={cfg.embed_dim}, depth={cfg.depth}, losses={on}"
