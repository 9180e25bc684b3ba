"""Self-distillation parts of DINO / iBOT used by HandMIM (§2.3): projection head, centring and sharpening.

* :class:`DINOHead` — the projection of the tokens into the latent space
  (HandMIM: "a shared MLP is used to project the tokens", one head for the
  class and the patch tokens): an MLP of ``num_layers`` linear layers (hidden
  2048, GELU), a bottleneck (256), L2 normalisation and a weight-normalised
  linear layer to ``K`` prototypes without bias. HandMIM reshapes the class
  token's ``K = 256`` outputs into 128 pseudo key-points (§3.1), so its
  preset is ``out_dim=256``.
* Teacher targets are **centred and sharpened**:
  ``softmax((t − c) / τ_t)`` (:func:`center_and_sharpen`); the centre ``c`` is
  an EMA (momentum 0.9) of the teacher's batch means (all ranks averaged under
  DDP) and ``τ_t`` warms up linearly from 0.04 to 0.07 (iBOT;
  :func:`teacher_temperature`). The student uses ``softmax(s / τ_s)``,
  ``τ_s = 0.1``. :class:`TeacherCentering` holds ``c`` (a persistent buffer:
  it is training state and resumes with the checkpoint) and the temperatures.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from hoimask._checks import check_in_range, check_int, check_positive, check_shape

__all__ = ["DINOHead", "teacher_temperature", "center_and_sharpen", "TeacherCentering"]


class _WeightNormLinear(nn.Module):
    """``x @ (g · v / ‖v‖)ᵀ`` without bias; ``v`` ``(out, in)``, ``g`` ``(out, 1)`` (DINO's ``weight_g`` / ``weight_v``)."""

    def __init__(self, in_features: int, out_features: int, *, learn_scale: bool, device=None, dtype=None) -> None:
        super().__init__()
        v = nn.Linear(in_features, out_features, bias=False, device=device, dtype=dtype).weight.detach()
        self.weight_v = nn.Parameter(v.clone())
        self.weight_g = nn.Parameter(torch.ones(out_features, 1, device=device, dtype=dtype), requires_grad=learn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)  # (out, in)
        return F.linear(x, weight)


class DINOHead(nn.Module):
    """DINO / iBOT projection head: MLP -> bottleneck -> L2 normalise -> weight-normalised prototypes.

    Args:
        in_dim: token size D.
        out_dim: number of prototypes K (HandMIM: 256 = 128 pseudo key-points × 2).
        hidden_dim: MLP width (2048 in DINO / iBOT).
        bottleneck_dim: size before the prototypes (256).
        num_layers: linear layers of the MLP (3), the last one to ``bottleneck_dim``.
        norm_last_layer: fix the prototype norms ``g`` to 1 (DINO's default for ViTs);
            ``False`` learns them.
        act_layer: activation between the MLP's layers.

    Shape:
        ``(..., in_dim)`` -> ``(..., out_dim)``.

    Example:
        >>> head = DINOHead(16, 8, hidden_dim=32, bottleneck_dim=8)
        >>> head(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        norm_last_layer: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "DINOHead"
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden_dim", hidden_dim),
                            ("bottleneck_dim", bottleneck_dim), ("num_layers", num_layers)):
            check_int(value, name=name, low=1, fn=fn)
        self.in_dim = in_dim
        widths = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b, device=device, dtype=dtype))
            if i < num_layers - 1:
                layers.append(act_layer())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = _WeightNormLinear(bottleneck_dim, out_dim, learn_scale=not norm_last_layer,
                                            device=device, dtype=dtype)
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):  # DINO: truncated normal, std 0.02, zero bias
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project tokens ``x (..., in_dim)`` to prototype scores ``(..., out_dim)``."""
        check_shape(x, f"... {self.in_dim}", name="x", fn="DINOHead.forward")
        z = F.normalize(self.mlp(x), dim=-1)  # (..., bottleneck) on the unit sphere
        return self.last_layer(z)


def teacher_temperature(step: int, *, warmup_steps: int, start: float = 0.04, end: float = 0.07) -> float:
    """iBOT's teacher temperature: linear from ``start`` to ``end`` over ``warmup_steps``, then ``end``.

    Args:
        step: optimiser step (or epoch: use the unit ``warmup_steps`` is in), from 0.
        warmup_steps: length of the warm-up (0: always ``end``).
        start: temperature at step 0 (0.04).
        end: temperature after warm-up (0.07).

    Returns:
        The temperature ``τ_t`` (> 0).

    Example:
        >>> [round(teacher_temperature(s, warmup_steps=10), 4) for s in (0, 5, 10, 99)]
        [0.04, 0.055, 0.07, 0.07]
    """
    fn = "teacher_temperature"
    check_int(step, name="step", low=0, fn=fn)
    check_int(warmup_steps, name="warmup_steps", low=0, fn=fn)
    check_positive(start, name="start", fn=fn)
    check_positive(end, name="end", fn=fn)
    if step >= warmup_steps:
        return float(end)
    return start + (end - start) * step / warmup_steps


def center_and_sharpen(
    logits: torch.Tensor, center: torch.Tensor | None = None, temperature: float = 0.07
) -> torch.Tensor:
    """Teacher targets ``softmax((logits − center) / temperature)`` over the last dimension.

    Args:
        logits: ``(..., K)`` teacher outputs.
        center: ``(K,)`` or ``(1, K)`` centre, or ``None`` (no centring).
        temperature: ``τ_t`` > 0; lower is sharper.

    Returns:
        ``(..., K)`` probabilities (each row sums to 1), detached: they are targets.

    Shape:
        ``(..., K)`` -> ``(..., K)``.

    Example:
        >>> p = center_and_sharpen(torch.tensor([[0.0, 0.1]]), torch.tensor([0.0, 0.1]))
        >>> p.tolist()
        [[0.5, 0.5]]
    """
    fn = "center_and_sharpen"
    dims = check_shape(logits, "... K", name="logits", fn=fn)
    check_positive(temperature, name="temperature", fn=fn)
    if center is not None:
        if not isinstance(center, torch.Tensor) or center.numel() != dims["K"]:
            check_shape(center, "1 K", name="center", dims=dims, fn=fn)  # raises the typed error
        logits = logits - center.reshape(-1).to(logits.dtype)
    return F.softmax(logits.detach() / temperature, dim=-1)


class TeacherCentering(nn.Module):
    """The teacher's centre (EMA of its outputs) and the two temperatures of DINO / iBOT.

    Use one per output space (iBOT keeps separate centres for the class and
    the patch tokens)::

        targets = centering(teacher_logits, step=step)   # softmax((t - c) / τ_t(step))
        ...                                              # loss against the student's softmax(s / τ_s)
        centering.update(teacher_logits)                 # c <- m c + (1 - m) mean(t), after the loss

    Args:
        dim: K, the size of the outputs.
        momentum: EMA momentum of the centre (0.9).
        teacher_temperature: ``τ_t`` after warm-up (0.07).
        warmup_teacher_temperature: ``τ_t`` at step 0 (0.04).
        warmup_steps: steps of the linear temperature warm-up (0: none).
        student_temperature: ``τ_s`` (0.1), read by the losses.

    Shape:
        ``(..., K)`` -> ``(..., K)`` probabilities.

    Example:
        >>> centering = TeacherCentering(4, warmup_steps=10)
        >>> centering(torch.randn(3, 4), step=0).shape, centering.teacher_temperature(0)
        (torch.Size([3, 4]), 0.04)
        >>> centering.update(torch.ones(3, 4))
        >>> centering.center.double().round(decimals=6).tolist()
        [[0.1, 0.1, 0.1, 0.1]]
    """

    center: torch.Tensor

    def __init__(
        self,
        dim: int,
        *,
        momentum: float = 0.9,
        teacher_temperature: float = 0.07,
        warmup_teacher_temperature: float = 0.04,
        warmup_steps: int = 0,
        student_temperature: float = 0.1,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "TeacherCentering"
        check_int(dim, name="dim", low=1, fn=fn)
        self.momentum = check_in_range(momentum, name="momentum", low=0.0, high=1.0, fn=fn)
        self.final_teacher_temperature = check_positive(teacher_temperature, name="teacher_temperature", fn=fn)
        self.warmup_teacher_temperature = check_positive(warmup_teacher_temperature,
                                                         name="warmup_teacher_temperature", fn=fn)
        self.warmup_steps = check_int(warmup_steps, name="warmup_steps", low=0, fn=fn)
        self.student_temperature = check_positive(student_temperature, name="student_temperature", fn=fn)
        self.register_buffer("center", torch.zeros(1, dim, device=device, dtype=dtype))

    def teacher_temperature(self, step: int) -> float:
        """``τ_t`` at ``step`` (:func:`teacher_temperature` with this module's settings)."""
        return teacher_temperature(step, warmup_steps=self.warmup_steps, start=self.warmup_teacher_temperature,
                                   end=self.final_teacher_temperature)

    def forward(self, teacher_logits: torch.Tensor, *, step: int) -> torch.Tensor:
        """Centred, sharpened teacher targets ``softmax((t − c) / τ_t(step))`` (detached)."""
        return center_and_sharpen(teacher_logits, self.center, self.teacher_temperature(step))

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor) -> None:
        """``c ← m·c + (1 − m)·mean(t)``, the mean over every leading dimension (and over ranks under DDP).

        Args:
            teacher_logits: ``(..., K)`` teacher outputs of this step (before centring).
        """
        check_shape(teacher_logits, f"... {self.center.shape[-1]}", name="teacher_logits", fn="TeacherCentering.update")
        batch_center = teacher_logits.detach().reshape(-1, self.center.shape[-1]).mean(dim=0, keepdim=True)
        batch_center = batch_center.to(self.center.dtype)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            batch_center /= dist.get_world_size()
        self.center.mul_(self.momentum).add_(batch_center, alpha=1.0 - self.momentum)
