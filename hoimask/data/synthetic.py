"""``SyntheticHOI``: licence-free, procedurally generated and rendered hand–object samples.

Each index seeds its own generator (``(seed, index)`` mixed by SplitMix64),
so ``dataset[i]`` is bit-identical across calls, processes and
``DataLoader`` workers, and independent of the order of access. The dataset
holds only its configuration (the hand model is built lazily in each
process), so it is cheap to construct and to pickle.

Cache to disk with the CLI::

    python -m hoimask.data.synthetic --out DIR --num N --size 128 [--seed 0]

and read the cache with :class:`hoimask.data.CachedHOI`.
"""

from __future__ import annotations

import argparse
import operator
import sys
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_in_range,
    check_int,
    check_probability,
    check_shape,
    check_size,
)
from hoimask.geometry import project

from .cache import _index_seed, write_cache
from .scene import render_scene, sample_scene
from .targets import query_points

__all__ = ["SyntheticHOI", "main"]


class SyntheticHOI(Dataset):
    """Random procedural hand grasping a primitive (or user mesh), rendered with every label.

    See :mod:`hoimask.data.sample` for the keys, and :mod:`hoimask.data.scene`
    for how scenes are drawn and rendered. ``grasped`` is True exactly for the
    scenes that place the object in the hand: the meaning of UniHOPE's
    motion-based grasp label for a single frame (the object is off the pose it
    would rest in without the hand; :attr:`hoimask.data.Scene.grasped`).

    Args:
        num_samples: dataset length.
        image_size: ``S`` or ``(H, W)``.
        seed: dataset seed; the same ``(seed, index)`` gives the same sample.
        num_sdf_points: ``Q`` query points per sample.
        num_object_points: ``P`` model points per sample.
        hand_only_prob: fraction of scenes without an object.
        not_grasped_prob: fraction of scenes with an object away from the hand.
        object_mesh: optional ``(vertices (V, 3), faces (T, 3))`` user mesh
            (metres, centred at its origin) used instead of random primitives.
        occlusion_range: ``(low, high)`` in ``[0, 1]``: only scenes whose hand
            occlusion ratio lies in ``[low, high]`` (both ends included): sample
            ``i`` is re-drawn from ``(seed, i, attempt)`` until one fits, so it
            stays deterministic. Builds occlusion-binned test splits (rare bins
            cost more renders; hand-only scenes have ratio 0). ``None``: all scenes.
        max_attempts: draws per sample before ``occlusion_range`` gives up
            with :class:`~hoimask._checks.ValueRangeError`.
        view_range: ``None`` (default): uniformly random global hand rotation;
            degrees: at most that far from a palm-to-camera view, rolled about
            the optical axis (see :func:`hoimask.data.scene.sample_scene`).
        deoccluded: add ``deoccluded_image`` (3, H, W), the same scene rendered
            without the object (UniHOPE's de-occluded pair).
        transform: ``t(sample, generator=None) -> sample`` applied last, with
            the sample's own generator.

    Example:
        >>> ds = SyntheticHOI(num_samples=4, image_size=32, num_sdf_points=64, num_object_points=32)
        >>> s = ds[0]
        >>> s["image"].shape, s["sdf_points"].shape, bool(torch.equal(s["image"], ds[0]["image"]))
        (torch.Size([3, 32, 32]), torch.Size([64, 3]), True)
    """

    def __init__(
        self,
        num_samples: int = 10000,
        image_size: int | tuple[int, int] = 128,
        seed: int = 0,
        *,
        num_sdf_points: int = 2048,
        num_object_points: int = 1000,
        hand_only_prob: float = 0.1,
        not_grasped_prob: float = 0.1,
        object_mesh: tuple[torch.Tensor, torch.Tensor] | None = None,
        deoccluded: bool = False,
        transform: Callable | None = None,
        view_range: float | None = None,
        occlusion_range: tuple[float, float] | None = None,
        max_attempts: int = 200,
    ) -> None:
        self.num_samples = check_int(num_samples, name="num_samples", low=1)
        self.image_size = check_size(image_size, name="image_size", low=8, allow_int=True)
        self.seed = check_int(seed, name="seed")
        self.num_sdf_points = check_int(num_sdf_points, name="num_sdf_points", low=0)
        self.num_object_points = check_int(num_object_points, name="num_object_points", low=1)
        self.hand_only_prob = check_probability(hand_only_prob, name="hand_only_prob")
        self.not_grasped_prob = check_probability(not_grasped_prob, name="not_grasped_prob")
        check_probability(hand_only_prob + not_grasped_prob, name="hand_only_prob + not_grasped_prob")
        if object_mesh is not None:
            check_shape(object_mesh[0], "V 3", name="object_mesh[0]")
            check_shape(object_mesh[1], "T 3", name="object_mesh[1]")
            object_mesh = (object_mesh[0].detach().to(torch.float64).cpu(), object_mesh[1].detach().long().cpu())
        self.object_mesh = object_mesh
        self.deoccluded = bool(deoccluded)
        self.transform = transform
        self.view_range = None if view_range is None else check_in_range(view_range, name="view_range", low=0.0, high=180.0)
        if occlusion_range is not None:
            if not isinstance(occlusion_range, (tuple, list)) or len(occlusion_range) != 2:
                raise ShapeError(f"SyntheticHOI(): argument 'occlusion_range' expected (low, high), got {occlusion_range!r}")
            lo, hi = (check_in_range(v, name=f"occlusion_range[{k}]", low=0.0, high=1.0)
                      for k, v in enumerate(occlusion_range))
            if lo > hi:
                raise ValueRangeError(f"SyntheticHOI(): argument 'occlusion_range' must have low <= high, got {occlusion_range}")
            occlusion_range = (lo, hi)
        self.occlusion_range = occlusion_range
        self.max_attempts = check_int(max_attempts, name="max_attempts", low=1, fn="SyntheticHOI")
        self._hand = None

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_hand"] = None  # rebuilt in each worker
        return state

    @property
    def hand(self):
        """The :class:`hoimask.hand.ProceduralHand` used (built on first use)."""
        if self._hand is None:
            from hoimask.hand.procedural import ProceduralHand

            self._hand = ProceduralHand()
        return self._hand

    def config(self) -> dict:
        """The constructor arguments as a JSON-serialisable dictionary (stored in caches)."""
        return {
            "num_samples": self.num_samples, "image_size": list(self.image_size), "seed": self.seed,
            "num_sdf_points": self.num_sdf_points, "num_object_points": self.num_object_points,
            "hand_only_prob": self.hand_only_prob, "not_grasped_prob": self.not_grasped_prob,
            "object_mesh": self.object_mesh is not None, "deoccluded": self.deoccluded,
            **({} if self.view_range is None else {"view_range": self.view_range}),
            **({} if self.occlusion_range is None else {"occlusion_range": list(self.occlusion_range)}),
        }  # fmt: skip

    def _draw(self, index: int):
        """The generator, scene and rendering of sample ``index`` (re-drawn until the occlusion fits)."""
        seed = _index_seed(self.seed, index)
        for attempt in range(self.max_attempts):
            g = torch.Generator().manual_seed(seed if attempt == 0 else _index_seed(seed, attempt))
            scene = sample_scene(
                self.hand, self.image_size, generator=g, hand_only_prob=self.hand_only_prob,
                not_grasped_prob=self.not_grasped_prob, object_mesh=self.object_mesh, view_range=self.view_range,
            )  # fmt: skip
            render = render_scene(scene, deoccluded=self.deoccluded)
            if self.occlusion_range is None:
                return g, scene, render
            lo, hi = self.occlusion_range
            if lo <= _occlusion(render) <= hi:
                return g, scene, render
        raise ValueRangeError(
            f"SyntheticHOI: no scene for index {index} had a hand occlusion ratio in [{lo}, {hi}] after "
            f"{self.max_attempts} attempts; widen 'occlusion_range', raise 'max_attempts', or lower 'hand_only_prob'"
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Generate sample ``index`` (deterministic in ``(seed, index)``)."""
        n = self.num_samples
        try:
            index = operator.index(index)  # ints, NumPy ints and 0-d integer tensors; 2.5 is refused
        except TypeError:
            raise DTypeError(
                f"SyntheticHOI.__getitem__(): argument 'index' expected an int, got {index!r} ({type(index).__name__})"
            ) from None
        if not -n <= index < n:
            raise IndexError(f"SyntheticHOI: index {index} out of range for {n} samples")
        index %= n
        hand = self.hand
        g, scene, render = self._draw(index)
        f64 = torch.float64
        obj = scene.obj
        Q, P = self.num_sdf_points, self.num_object_points
        if Q > 0:
            from hoimask.sdf.samplers import sample_surface

            verts = scene.vertices[None]

            def hand_surface(m: int) -> torch.Tensor:
                return sample_surface(verts, hand.faces, m, generator=g)[0][0]

            def obj_surface(m: int) -> torch.Tensor:
                return obj.to_camera(obj.surface_points(m, generator=g))

            points = query_points(Q, hand_surface, None if obj is None else obj_surface, generator=g)
            points = points.float()
            sdf_hand = scene.hand_sdf(points)
            sdf_obj = obj.sdf(points) if obj is not None else torch.full((Q,), float("nan"), dtype=f64)
        else:
            points, sdf_hand, sdf_obj = torch.zeros(0, 3), torch.zeros(0), torch.zeros(0)
        if obj is not None:
            object_points = obj.surface_points(P, generator=g)
            R, t = obj.rotation, obj.translation
        else:
            object_points, R, t = torch.zeros(P, 3), torch.eye(3), torch.zeros(3)
        sample = {
            "image": render.image,
            "segmentation": render.segmentation,
            "amodal_hand_mask": render.amodal_hand_mask,
            "depth": render.depth,
            "joints_3d": scene.joints.float(),
            "joints_2d": project(scene.joints, scene.K).float(),
            "K": scene.K.float(),
            "hand_pose": scene.hand_pose.float(),
            "hand_shape": scene.hand_shape.float(),
            "object_rotation": R.float(),
            "object_translation": t.float(),
            "object_points": object_points.float(),
            "sdf_points": points.float(),
            "sdf_hand": sdf_hand.float(),
            "sdf_object": sdf_obj.float(),
            "grasped": torch.tensor(scene.grasped),
            "occlusion_ratio": torch.tensor(_occlusion(render), dtype=torch.float32),
            "has_object": torch.tensor(obj is not None),
        }
        if render.deoccluded_image is not None:
            sample["deoccluded_image"] = render.deoccluded_image
        if self.transform is not None:
            sample = self.transform(sample, generator=g)
        return sample


def _occlusion(render) -> float:
    """``1 - visible / amodal`` hand pixels (0 without a hand pixel)."""
    visible = int((render.segmentation == 1).sum())
    amodal = int(render.amodal_hand_mask.sum())
    return 1.0 - visible / amodal if amodal else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: render ``--num`` samples into a sharded cache in ``--out`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m hoimask.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sdf-points", type=int, default=2048)
    parser.add_argument("--object-points", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--deoccluded", action="store_true", help="also store the image without the object")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    ds = SyntheticHOI(
        num_samples=args.num, image_size=args.size, seed=args.seed, num_sdf_points=args.sdf_points,
        num_object_points=args.object_points, deoccluded=args.deoccluded,
    )  # fmt: skip
    path = write_cache(ds, args.out, shard_size=args.shard_size, config=ds.config(), progress=not args.no_progress)
    print(f"wrote {args.num} samples to {path.parent} (manifest {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
