"""``torch.compile``: the encoders and heads of MaskHOI and HOISDF trace as single graphs (issue 17, item 5).

``torch._dynamo.explain`` traces without compiling, so these run in seconds.
Every submodule one or two levels below the model is traced with the inputs
it received in an eager training forward; the ones that must be one graph
are listed. The breaks that remain are in the models' own ``forward`` (the
masking's data-dependent patch choice, the optional targets of the losses,
HOISDF's point sampling and its logged fallback counts).
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo

from hoimask._checks import ValueRangeError, compiling
from hoimask.data import SyntheticHOI, collate
from hoimask.models import HOISDF, MaskHOI
from hoimask.nn import PixelNormalization, ViTEncoder


def _submodule_inputs(model: torch.nn.Module, batch: dict) -> dict:
    """name -> (module, args, kwargs) of the first call of every module up to two levels down, in one forward."""
    captured: dict = {}
    handles = []
    for name, child in model.named_modules():
        if name and name.count(".") <= 1:
            def hook(mod, args, kwargs, name=name):
                captured.setdefault(name, (mod, args, kwargs))
            handles.append(child.register_forward_pre_hook(hook, with_kwargs=True))
    model(batch)
    for h in handles:
        h.remove()
    return captured


def _breaks(module, args, kwargs) -> list[str]:
    dynamo.reset()
    try:
        e = dynamo.explain(module.forward)(*args, **kwargs)
    finally:
        dynamo.reset()
    return [b.reason.splitlines()[0] for b in e.break_reasons]


def _batch(num_sdf_points: int) -> dict:
    scenes = SyntheticHOI(2, image_size=128, num_sdf_points=num_sdf_points, seed=0)
    return collate([scenes[i] for i in range(2)])


MASKHOI_GRAPHS = ("pixel_norm", "encoder", "hand_branch", "object_branch", "segmentation_head", "heatmap_head",
                  "hand_branch.sdf", "object_branch.sdf", "mano_head", "object_head", "hand_loss")
HOISDF_GRAPHS = ("pixel_norm", "backbone.encoder", "backbone.dpt", "image_heads", "hand_sdf", "object_sdf", "tokens",
                 "hand_transformer", "vote_head", "object_transformer", "object_head", "hand_layer")


@pytest.mark.parametrize("kind", ["maskhoi", "hoisdf"])
def test_encoder_and_heads_trace_without_graph_breaks(kind):
    torch.manual_seed(0)
    if kind == "maskhoi":
        model, batch, names = MaskHOI.from_preset("tiny"), _batch(64), MASKHOI_GRAPHS
    else:
        model, batch, names = HOISDF.from_preset("tiny"), _batch(512), HOISDF_GRAPHS
    captured = _submodule_inputs(model.train(), batch)
    missing = [n for n in names if n not in captured]
    assert not missing, f"not called in forward: {missing}"
    found = {n: _breaks(*captured[n]) for n in names}
    assert {n: r for n, r in found.items() if r} == {}


def test_vit_encoder_traces_as_one_graph():
    encoder = ViTEncoder(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2)
    dynamo.reset()
    e = dynamo.explain(encoder)(torch.rand(2, 3, 64, 64))
    dynamo.reset()
    assert (e.graph_count, e.graph_break_count) == (1, 0)


def test_value_checks_run_eagerly_and_are_skipped_while_tracing():
    norm = PixelNormalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    normalised = torch.full((1, 3, 8, 8), 2.0)  # out of [0, 1]: an already normalised batch
    with pytest.raises(ValueRangeError, match="expected RGB in"):
        norm(normalised)
    assert not compiling()
    dynamo.reset()
    traced = torch.compile(lambda x: (norm(x), compiling()), backend="eager", fullgraph=True)
    out, flag = traced(normalised)
    dynamo.reset()
    assert flag is True
    torch.testing.assert_close(out, (normalised - 0.5) / 0.25)
