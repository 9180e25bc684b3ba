"""HandMIM's multi-level pixel decoder (§2.4, eq. 8): ``T^{i+1} = T-Conv(Linear(Concat[T^i, L^i]))``.

Block outputs ``L^i`` of the encoder (HandMIM: blocks 3, 6, 9, 12 of a ViT-B;
:func:`pyramid_tap_layers` spreads them over any depth) are fused with the
running pyramid map ``T^i`` by a per-pixel linear layer and upsampled by a
transposed convolution; after the last stage ``T^4`` has the input's size and
channels and is compared with the image by
:func:`hoimask.losses.multilevel_reconstruction_loss` (eq. 9).

Where the paper is silent we chose, and say so:

* **Order.** ``L^i`` are taken in block order: the shallowest tap starts the
  pyramid at the token grid, the deepest tap is fused last, at the finest
  level ("a pyramid fusion layer following certain transformer blocks").
* **Resolution.** ``L^i`` lives on the token grid while ``T^i`` is finer: each
  token is repeated over the pixels of ``T^i`` it covers (nearest upsampling;
  no parameters beyond the paper's Linear and T-Conv). The first stage has no
  ``T^0`` and reads ``L^0`` alone.
* **Strides.** With P = 16 and four taps each T-Conv doubles the resolution
  (kernel 2, stride 2), as in the paper. Other patch sizes (a power of two)
  spread the ``log2 P`` doublings over the stages, the later stages first:
  P = 8 with four taps gives strides 1, 2, 2, 2 (a stride-1 stage is a 1×1
  transposed convolution).
* **No activation** between the layers: eq. (8) has none (``act_layer`` adds one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hoimask._checks import ShapeError, ValueRangeError, check_int, check_shape, check_size

__all__ = ["pyramid_tap_layers", "PyramidPixelDecoder"]


def pyramid_tap_layers(depth: int, num_taps: int = 4) -> list[int]:
    """Block indices (0-based) HandMIM reads for pixel reconstruction, spread evenly over ``depth``.

    Blocks 3, 6, 9, 12 (1-based) of a 12-block ViT, as in HandMIM §3.1;
    ``[(i + 1) · depth // num_taps − 1]`` in general, e.g. every block of a
    4-block encoder.

    Args:
        depth: encoder blocks (>= ``num_taps``).
        num_taps: how many block outputs to read.

    Returns:
        ``num_taps`` increasing indices in ``[0, depth)``; the last is ``depth - 1``.

    Raises:
        ValueRangeError: ``depth < num_taps`` or a count below 1.

    Example:
        >>> pyramid_tap_layers(12), pyramid_tap_layers(4), pyramid_tap_layers(24)
        ([2, 5, 8, 11], [0, 1, 2, 3], [5, 11, 17, 23])
    """
    check_int(num_taps, name="num_taps", low=1, fn="pyramid_tap_layers")
    check_int(depth, name="depth", low=num_taps, fn="pyramid_tap_layers")
    return [(i + 1) * depth // num_taps - 1 for i in range(num_taps)]


def _stage_strides(patch_size: int, num_stages: int) -> list[int]:
    """Upsampling factor of each stage: powers of two multiplying to ``patch_size``, larger ones last."""
    if patch_size & (patch_size - 1):
        raise ValueRangeError(f"PyramidPixelDecoder(): argument 'patch_size' expected a power of two, got {patch_size}")
    doublings = patch_size.bit_length() - 1
    base, extra = divmod(doublings, num_stages)
    return [2 ** (base + (1 if i >= num_stages - extra else 0)) for i in range(num_stages)]


class PyramidPixelDecoder(nn.Module):
    """Fuse block outputs into a full-resolution image, one Linear + transposed convolution per tap (eq. 8).

    Stage ``i`` concatenates ``T^i`` (``channels[i]`` channels; nothing for
    ``i = 0``) with tap ``L^i`` repeated to ``T^i``'s resolution, applies a
    linear layer to ``channels[i]`` features per pixel and a transposed
    convolution (kernel = stride, see the module docstring) giving ``T^{i+1}``
    with ``channels[i+1]`` channels — or ``out_chans`` after the last stage.

    Args:
        embed_dim: D of the taps.
        patch_size: P; the output is P times the token grid.
        num_taps: number of block outputs (stages); the paper's 4.
        channels: linear-layer widths of the stages, one per tap, coarse to fine.
        out_chans: channels of the reconstruction (3, RGB).
        act_layer: optional activation after each linear layer (``None``: as eq. 8).

    Shape:
        taps: ``num_taps`` tensors ``(B, N, D)`` (grid order, ``N = gh·gw``) ->
        ``(B, out_chans, gh·P, gw·P)``.

    Example:
        >>> dec = PyramidPixelDecoder(16, patch_size=8, channels=(32, 16, 16, 8))
        >>> taps = [torch.randn(2, 12, 16) for _ in range(4)]
        >>> dec(taps, (3, 4)).shape
        torch.Size([2, 3, 24, 32])
    """

    def __init__(
        self,
        embed_dim: int,
        *,
        patch_size: int = 16,
        num_taps: int = 4,
        channels: Sequence[int] = (256, 128, 64, 32),
        out_chans: int = 3,
        act_layer: type[nn.Module] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        fn = "PyramidPixelDecoder"
        check_int(embed_dim, name="embed_dim", low=1, fn=fn)
        check_int(patch_size, name="patch_size", low=1, fn=fn)
        check_int(num_taps, name="num_taps", low=1, fn=fn)
        check_int(out_chans, name="out_chans", low=1, fn=fn)
        channels = check_size(tuple(channels), name="channels", length=num_taps, fn=fn)
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.num_taps = num_taps
        self.strides = _stage_strides(patch_size, num_taps)
        kw = dict(device=device, dtype=dtype)
        self.fuse = nn.ModuleList()
        self.upsample = nn.ModuleList()
        self.act = nn.ModuleList()
        for i, (width, stride) in enumerate(zip(channels, self.strides)):
            previous = channels[i] if i > 0 else 0  # T^i, made by the previous stage
            following = channels[i + 1] if i + 1 < num_taps else out_chans
            # per-pixel Linear of eq. (8): [T^i, L^i] -> width
            self.fuse.append(nn.Linear(previous + embed_dim, width, **kw))
            self.act.append(act_layer() if act_layer is not None else nn.Identity())
            self.upsample.append(nn.ConvTranspose2d(width, following, kernel_size=stride, stride=stride, **kw))

    def forward(self, taps: Sequence[torch.Tensor], grid_size: tuple[int, int]) -> torch.Tensor:
        """Run the pyramid on the block outputs ``taps`` (shallow first) of a ``grid_size`` token grid.

        Args:
            taps: ``num_taps`` tensors ``(B, N, D)`` over the full grid (e.g.
                ``MaskTokenEncoder(...).layers``), in block order.
            grid_size: ``(gh, gw)`` with ``gh·gw = N``.

        Returns:
            ``(B, out_chans, gh·P, gw·P)`` reconstruction ``T^4``.
        """
        fn = "PyramidPixelDecoder.forward"
        gh, gw = check_size(grid_size, name="grid_size", fn=fn)
        if not isinstance(taps, (list, tuple)) or len(taps) != self.num_taps:
            got = len(taps) if isinstance(taps, (list, tuple)) else type(taps).__name__
            raise ShapeError(f"{fn}(): argument 'taps' expected a sequence of {self.num_taps} tensors, got {got}")
        dims = {"N": gh * gw, "D": self.embed_dim}
        for i, tap in enumerate(taps):
            check_shape(tap, "B N D", name=f"taps[{i}]", dims=dims, fn=fn)
        out = None
        for i, tap in enumerate(taps):
            grid = rearrange(tap, "b (h w) d -> b d h w", h=gh, w=gw)  # (B, D, gh, gw)
            if out is None:
                x = grid
            else:
                scale = out.shape[-1] // gw
                x = torch.cat([out, F.interpolate(grid, scale_factor=scale, mode="nearest")], dim=1)  # (B, C+D, h, w)
            x = self.act[i](self.fuse[i](x.movedim(1, -1))).movedim(-1, 1)  # per-pixel Linear: (B, width, h, w)
            out = self.upsample[i](x)  # (B, C', h·s, w·s)
        return out
