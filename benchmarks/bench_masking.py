"""Masker throughput: vectorised maskers vs. a straightforward per-sample Python reference.

Batch of B images of 224 x 224 pixels, patch 16 (a 14 x 14 grid), with a
pixel segmentation (0 background, 1 hand, 2 object) and 21 joints in pixels.
The reference loops over samples in Python and uses torch on one sample at a
time (per-sample labels, per-region ``randperm``, per-bone coverage), i.e. what
one writes first. Both are measured in the same run; the table prints the
median time per batch and the speed-up.

    python benchmarks/bench_masking.py            # B=256, 2 threads
    python benchmarks/bench_masking.py --threads 1 --repeats 30
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from unittest import mock

import torch

from hoimask._numba import numba_enabled
from hoimask.masking import (
    HybridMasker,
    MultiModalMasker,
    RandomMasker,
    RegionRatioMasker,
    SkeletonGuidedMasker,
    TargetFocusedMasker,
    patch_labels,
)
from hoimask.skeleton import BONES, FINGER_CHAINS, JOINT_DEPTH

SIZE, PATCH, GRID = 224, 16, (14, 14)


def make_scenes(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Joints ``(B, 21, 2)`` and a uint8 segmentation ``(B, 224, 224)``: a hand fan over a disk object."""
    u = torch.rand(batch, 6, generator=generator)
    wrist = torch.stack([SIZE * (0.35 + 0.3 * u[:, 0]), SIZE * (0.7 + 0.15 * u[:, 1])], -1)  # (B, 2)
    axis = -math.pi / 2 + (u[:, 2] - 0.5)
    scale = SIZE * (0.12 + 0.05 * u[:, 3])
    joints = torch.zeros(batch, 21, 2)
    joints[:, 0] = wrist
    for f in range(5):
        ang = axis + (-1.0 + 0.4 * f)
        direction = torch.stack([torch.cos(ang), torch.sin(ang)], -1)
        for k in range(4):
            joints[:, 1 + 4 * f + k] = wrist + (1.0 + 0.55 * k) * scale.unsqueeze(-1) * direction
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    centre = joints.mean(1)  # (B, 2)
    dx = xs.unsqueeze(0) - centre[:, 0, None, None]
    dy = ys.unsqueeze(0) - centre[:, 1, None, None]
    hand = (dx**2 + dy**2) <= (1.6 * scale[:, None, None]) ** 2
    ocentre = joints[:, [4, 8, 12, 16, 20]].mean(1) + scale.unsqueeze(-1) * torch.stack(
        [torch.cos(axis), torch.sin(axis)], -1)
    ox = xs.unsqueeze(0) - ocentre[:, 0, None, None]
    oy = ys.unsqueeze(0) - ocentre[:, 1, None, None]
    obj = (ox**2 + oy**2) <= (SIZE * (0.12 + 0.08 * u[:, 4]))[:, None, None] ** 2
    seg = torch.zeros(batch, SIZE, SIZE, dtype=torch.uint8)
    seg[obj] = 2
    seg[hand] = 1
    return joints, seg


# ----------------------------------------------------------------------------- per-sample reference


def _ref_labels(seg: torch.Tensor) -> list[int]:
    labels = []
    for r in range(GRID[0]):
        for c in range(GRID[1]):
            block = seg[r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH]
            labels.append(1 if bool((block == 1).any()) else 2 if bool((block == 2).any()) else 0)
    return labels


def _ref_budget(n: list[int], L: int, ratios: tuple[float, float, float]) -> list[int]:
    k_hand = round(n[1] * (1 - ratios[1]))
    rest = L - k_hand
    want_bg, want_obj = n[0] * (1 - ratios[0]), n[2] * (1 - ratios[2])
    flexible = max(n[0] + n[2], 1)
    k_bg = min(max(round(want_bg + (rest - want_bg - want_obj) * n[0] / flexible), 0), n[0])
    k_obj = min(max(rest - k_bg, 0), n[2])
    k_bg = min(max(rest - k_obj, 0), n[0])
    return [k_bg, L - k_bg - k_obj, k_obj]


def _ref_bone_cover(a: torch.Tensor, b: torch.Tensor, thickness: float) -> set[int]:
    """Patches a bone touches, by sampling points along it (what one writes first)."""
    cover = set()
    steps = int(max(2, (b - a).norm().item() / 2))
    for t in torch.linspace(0, 1, steps).tolist():
        x, y = (a + t * (b - a)).tolist()
        for ox in (-thickness / 2, 0.0, thickness / 2):
            for oy in (-thickness / 2, 0.0, thickness / 2):
                c, r = int((x + ox + 0.5) // PATCH), int((y + oy + 0.5) // PATCH)
                if 0 <= r < GRID[0] and 0 <= c < GRID[1]:
                    cover.add(r * GRID[1] + c)
    return cover


def _ref_sample(seg, joints, L, ratios, skeleton_prob, generator) -> list[int]:
    """Kept patch indices of one sample (RMRA + optional skeleton guidance)."""
    labels = _ref_labels(seg)
    regions = [[i for i, lab in enumerate(labels) if lab == k] for k in range(3)]
    budget = _ref_budget([len(r) for r in regions], L, ratios)
    kept = []
    for k in (0, 2):
        perm = torch.randperm(len(regions[k]), generator=generator).tolist()
        kept += [regions[k][i] for i in perm[: budget[k]]]
    hand = regions[1]
    order = [hand[i] for i in torch.randperm(len(hand), generator=generator).tolist()]
    if float(torch.rand((), generator=generator)) < skeleton_prob:
        finger = int(torch.randint(0, 5, (), generator=generator))
        if float(torch.rand((), generator=generator)) < 0.5:
            chain = FINGER_CHAINS[("thumb", "index", "middle", "ring", "little")[finger]]
            bones = [(p, c) for p, c in BONES if p in chain and c in chain]
        else:
            bones = [(p, c) for p, c in BONES if JOINT_DEPTH[c] == 4]
        target = set()
        for p, c in bones:
            target |= _ref_bone_cover(joints[p], joints[c], PATCH / 2)
        order = [i for i in order if i not in target] + [i for i in order if i in target]  # targets masked first
    kept += order[: budget[1]]
    return kept


def reference_masks(seg, joints, L, ratios, skeleton_prob, generator) -> torch.Tensor:
    """``(B, N)`` bool masks from the per-sample reference."""
    B = seg.shape[0]
    mask = torch.ones(B, GRID[0] * GRID[1], dtype=torch.bool)
    for b in range(B):
        mask[b, _ref_sample(seg[b], joints[b], L, ratios, skeleton_prob, generator)] = False
    return mask


def reference_random(B: int, L: int, generator) -> torch.Tensor:
    mask = torch.ones(B, GRID[0] * GRID[1], dtype=torch.bool)
    for b in range(B):
        mask[b, torch.randperm(GRID[0] * GRID[1], generator=generator)[:L]] = False
    return mask


def reference_target_focused(seg, L, focus_ratio, generator) -> torch.Tensor:
    """Per-sample target-focused masks: contact zone, blob around a random target patch, rest random."""
    B, N = seg.shape[0], GRID[0] * GRID[1]
    mask = torch.ones(B, N, dtype=torch.bool)
    def near(labels, i, label):
        r, c = divmod(i, GRID[1])
        return any(labels[rr * GRID[1] + cc] == label for rr in range(max(r - 1, 0), min(r + 2, GRID[0]))
                   for cc in range(max(c - 1, 0), min(c + 2, GRID[1])))

    for b in range(B):
        labels = _ref_labels(seg[b])
        target = [i for i in range(N) if near(labels, i, 1) and near(labels, i, 2)]
        if not target:
            target = [i for i in range(N) if labels[i] != 0] or list(range(N))
        centre = target[int(torch.randint(len(target), (), generator=generator))]
        cr, cc = divmod(centre, GRID[1])
        target.sort(key=lambda i: (i // GRID[1] - cr) ** 2 + (i % GRID[1] - cc) ** 2)
        masked_target = max(min(round(focus_ratio * (N - L)), len(target)), len(target) - L)
        rest = [i for i in range(N) if i not in set(target)]
        rest = [rest[i] for i in torch.randperm(len(rest), generator=generator).tolist()]
        masked = set(target[:masked_target]) | set(rest[: N - L - masked_target])
        mask[b] = torch.tensor([i in masked for i in range(N)])
    return mask


def reference_multimodal(B: int, M: int, L: int, generator) -> torch.Tensor:
    """Per-sample MultiMAE masks with Dirichlet(1) shares (normalised exponentials)."""
    N = GRID[0] * GRID[1]
    mask = torch.ones(B, M * N, dtype=torch.bool)
    for b in range(B):
        e = -torch.log(torch.rand(M, generator=generator))
        counts = [int(x) for x in (e / e.sum() * L).floor().tolist()]
        counts[0] += L - sum(counts)
        for m in range(M):
            keep = torch.randperm(N, generator=generator)[: counts[m]]
            mask[b, m * N + keep] = False
    return mask


# ----------------------------------------------------------------------------- timing


def measure(fn, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """Median and minimum wall time in ms (the minimum is the least disturbed by other load)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def torch_labels(fn):
    """``fn`` run with ``HOIMASK_DISABLE_NUMBA=1``: patch labels by torch ops instead of the numba pass."""

    def run():
        with mock.patch.dict(os.environ, {"HOIMASK_DISABLE_NUMBA": "1"}):
            return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    B = args.batch
    g = torch.Generator().manual_seed(0)
    joints, seg = make_scenes(B, g)
    labels = patch_labels(seg, GRID)
    seg_grid = labels.view(B, *GRID).to(torch.uint8)  # segmentation already at patch resolution
    fractions = [(labels == k).float().mean().item() for k in range(3)]
    L = 49
    ratios = (0.75, 0.5, 0.9)
    kw = {"segmentation": seg, "joints_2d": joints, "generator": g}
    rows = []

    def add(name, fast, ref=None):
        t_fast, t_min = measure(fast, args.repeats)
        t_ref = measure(ref, args.ref_repeats, warmup=1)[0] if ref is not None else float("nan")
        rows.append((name, t_fast, t_min, t_ref))

    add("RandomMasker", lambda: RandomMasker(0.75)(B, GRID, generator=g), lambda: reference_random(B, L, g))
    add("patch_labels (any)", lambda: patch_labels(seg, GRID))
    add("RegionRatioMasker", lambda: RegionRatioMasker()(B, GRID, **kw),
        lambda: reference_masks(seg, joints, L, ratios, 0.0, g))
    add("SkeletonGuidedMasker", lambda: SkeletonGuidedMasker()(B, GRID, **kw),
        lambda: reference_masks(seg, joints, L, (0.75, 0.5, 0.75), 1.0, g))
    add("HybridMasker (p=0.5)", lambda: HybridMasker()(B, GRID, **kw),
        lambda: reference_masks(seg, joints, L, ratios, 0.5, g))
    seg64, hand_mask = seg.long(), seg == 1
    add("HybridMasker, int64 seg", lambda: HybridMasker()(B, GRID, segmentation=seg64, joints_2d=joints, generator=g))
    add("HybridMasker, bool hand", lambda: HybridMasker()(B, GRID, segmentation=hand_mask, joints_2d=joints,
                                                           generator=g))
    if numba_enabled():  # the same calls on the torch labelling path, for the ratio (docs/masking.md)
        add("patch_labels, torch path", torch_labels(lambda: patch_labels(seg, GRID)))
        add("HybridMasker, torch labels", torch_labels(lambda: HybridMasker()(B, GRID, **kw)))
        add("  int64 seg, torch labels", torch_labels(lambda: HybridMasker()(B, GRID, segmentation=seg64,
                                                                              joints_2d=joints, generator=g)))
    add("HybridMasker, 14x14 seg", lambda: HybridMasker()(B, GRID, segmentation=seg_grid, joints_2d=joints / PATCH,
                                                          generator=g))
    add("TargetFocusedMasker", lambda: TargetFocusedMasker()(B, GRID, **kw),
        lambda: reference_target_focused(seg, L, 0.5, g))
    add("MultiModalMasker (M=2)", lambda: MultiModalMasker(2)(B, GRID, generator=g),
        lambda: reference_multimodal(B, 2, 98, g))

    print(f"B={B}, image {SIZE}x{SIZE}, patch {PATCH}, grid {GRID[0]}x{GRID[1]}, threads={args.threads}, "
          f"torch {torch.__version__}, patch labels by {'numba' if numba_enabled() else 'torch'}; "
          "region fractions bg/hand/obj = "
          + "/".join(f"{x:.2f}" for x in fractions))
    print(f"{'masker':<26} {'median ms':>10} {'min ms':>8} {'reference ms':>13} {'speed-up':>9}")
    for name, fast, best, ref in rows:
        ratio = f"{ref / fast:8.0f}x" if ref == ref else f"{'-':>9}"
        ref_s = f"{ref:13.1f}" if ref == ref else f"{'-':>13}"
        print(f"{name:<26} {fast:10.2f} {best:8.2f} {ref_s} {ratio}")
    print("speed-up = reference median / vectorised median; reference = per-sample Python loop")


if __name__ == "__main__":
    main()
