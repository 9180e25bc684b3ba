"""hoimask.engine.figures: the shared colours, labelled grids, skeletons and boxes, charts, PNG output."""

from __future__ import annotations

import inspect
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.engine.figures import (
    BACKGROUND_COLOUR,
    BASELINE_COLOURS,
    GROUND_TRUTH_COLOUR,
    HAND_COLOUR,
    HIDDEN_HAND_COLOUR,
    INK_COLOUR,
    MASKED_COLOUR,
    OBJECT_COLOUR,
    PAPER_COLOUR,
    PREDICTED_COLOUR,
    SEGMENTATION_COLOURS,
    SEGMENTATION_LEGEND,
    SERIES_COLOURS,
    bar_chart,
    colour_segmentation,
    draw_box,
    draw_skeleton,
    enlarge,
    error_by_occlusion,
    label_grid,
    legend_strip,
    line_chart,
    loss_curves,
    picture_from_image,
    points_box,
    save_figure,
)
from hoimask.engine.figures.charts import _format, _linear_ticks, _log_ticks
from hoimask.skeleton import BONES


def _has(picture: torch.Tensor, colour) -> torch.Tensor:
    """``(H, W)`` bool: pixels of exactly ``colour``."""
    return (picture == torch.tensor(colour, dtype=torch.uint8)).all(-1)


def _box_of(mask: torch.Tensor) -> tuple[int, int, int, int]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def _blank(h: int = 64, w: int = 64) -> torch.Tensor:
    return torch.zeros(h, w, 3, dtype=torch.uint8)


# ----------------------------------------------------------------------------------------------- colour scheme
def test_the_scheme_is_one_set_of_distinct_colours_shared_with_draw_mask():
    from hoimask.masking import draw_mask

    named = [BACKGROUND_COLOUR, HAND_COLOUR, HIDDEN_HAND_COLOUR, OBJECT_COLOUR, MASKED_COLOUR, GROUND_TRUTH_COLOUR,
             PREDICTED_COLOUR]
    assert len(set(named)) == len(named)
    for c in [*named, *BASELINE_COLOURS, *SERIES_COLOURS]:
        assert len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
    assert SEGMENTATION_COLOURS == (BACKGROUND_COLOUR, HAND_COLOUR, OBJECT_COLOUR)
    assert dict(SEGMENTATION_LEGEND) == {"background": BACKGROUND_COLOUR, "hand": HAND_COLOUR, "object": OBJECT_COLOUR}
    # masked patches look the same whether hoimask.masking or a figure draws them
    assert tuple(inspect.signature(draw_mask).parameters["fill"].default) == MASKED_COLOUR


# ------------------------------------------------------------------------------------------------- overlays
def test_colour_segmentation_uses_the_shared_colours_and_hatches_the_hidden_hand():
    labels = torch.tensor([[0, 1, 2]])
    assert colour_segmentation(labels)[0].tolist() == [list(c) for c in SEGMENTATION_COLOURS]
    seg = torch.full((12, 12), 2)
    seg[:, :3] = 0
    seg[:, -3:] = 1
    hidden = torch.ones(12, 12, dtype=torch.bool)
    pic = colour_segmentation(seg, hidden_hand=hidden)
    assert _has(pic[:, -3:], HAND_COLOUR).all()  # visible hand stays hand
    assert _has(pic[:, :3], HIDDEN_HAND_COLOUR).all()  # hidden hand over background: filled
    middle = pic[:, 3:-3]  # hidden hand over the object: stripes of both colours
    assert (_has(middle, HIDDEN_HAND_COLOUR) | _has(middle, OBJECT_COLOUR)).all()
    assert _has(middle, HIDDEN_HAND_COLOUR).any() and _has(middle, OBJECT_COLOUR).any()
    assert colour_segmentation(torch.zeros(2, 5, 7, dtype=torch.int64)).shape == (2, 5, 7, 3)


def test_colour_segmentation_refuses_bad_labels():
    with pytest.raises(ValueRangeError, match="labels"):
        colour_segmentation(torch.tensor([[0, 3]]))
    with pytest.raises(DTypeError, match="labels"):
        colour_segmentation(torch.zeros(4, 4))
    with pytest.raises(ShapeError, match="hidden_hand"):
        colour_segmentation(torch.zeros(4, 4, dtype=torch.int64), hidden_hand=torch.zeros(4, 5, dtype=torch.bool))


def test_picture_from_image_and_enlarge():
    image = torch.rand(2, 3, 5, 7)
    pic = picture_from_image(image)
    assert pic.shape == (2, 5, 7, 3) and pic.dtype == torch.uint8
    assert torch.equal(pic[1], (image[1].permute(1, 2, 0) * 255).round().to(torch.uint8))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
    normalised = (image[0] - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert (picture_from_image(normalised, mean=mean, std=std).int() - pic[0].int()).abs().max() <= 1
    with pytest.raises(DTypeError, match="together"):
        picture_from_image(image[0], mean=mean)
    with pytest.raises(ShapeError, match="image"):
        picture_from_image(torch.rand(4, 5, 7))
    big = enlarge(pic[0], 3)
    assert big.shape == (15, 21, 3)
    assert torch.equal(big[3:6, 6:9], pic[0][1, 2].expand(3, 3, 3))
    with pytest.raises(ValueRangeError, match="factor"):
        enlarge(pic[0], 0)
    with pytest.raises(DTypeError, match="picture"):
        enlarge(torch.zeros(5, 7, 3), 2)


def test_points_box_ignores_points_that_are_not_finite():
    pts = torch.tensor([[[1.0, 5.0], [3.0, 2.0], [math.nan, 0.0]], [[math.nan, 1.0], [math.inf, 1.0], [0.0, math.nan]]])
    box = points_box(pts)
    assert box[0].tolist() == [1.0, 2.0, 3.0, 5.0]
    assert torch.isnan(box[1]).all()
    with pytest.raises(ShapeError, match="points"):
        points_box(torch.zeros(4, 3))


def test_draw_skeleton_draws_every_bone_in_the_given_colour():
    g = torch.Generator().manual_seed(0)
    joints = torch.rand(21, 2, generator=g) * 100 + 14
    picture = _blank(128, 128)
    out = draw_skeleton(picture, joints, colour=PREDICTED_COLOUR)
    assert out.shape == picture.shape and not picture.any()  # input untouched
    on = _has(out, PREDICTED_COLOUR)
    for a, b in BONES:  # the middle of each bone (within a pixel) carries the colour
        x, y = ((joints[a] + joints[b]) / 2).round().long().tolist()
        assert on[y - 1 : y + 2, x - 1 : x + 2].any(), (a, b)
    assert not _has(out, GROUND_TRUTH_COLOUR).any()
    # unannotated joints (and their bones) are left out
    hidden = joints.clone()
    hidden[:] = math.nan
    assert torch.equal(draw_skeleton(picture, hidden), picture)


def test_draw_skeleton_refuses_bad_input():
    with pytest.raises(ShapeError, match="joints_2d"):
        draw_skeleton(_blank(), torch.zeros(20, 2))
    with pytest.raises(DTypeError, match="picture"):
        draw_skeleton(torch.zeros(64, 64, 3), torch.zeros(21, 2))
    with pytest.raises(ShapeError, match="picture"):
        draw_skeleton(torch.zeros(3, 64, 64, dtype=torch.uint8), torch.zeros(21, 2))
    with pytest.raises(ValueRangeError, match="colour"):
        draw_skeleton(_blank(), torch.zeros(21, 2), colour=(0, 0, 300))
    with pytest.raises(DTypeError, match="colour"):
        draw_skeleton(_blank(), torch.zeros(21, 2), colour="green")


def test_draw_box_outlines_the_box_only():
    out = draw_box(_blank(), torch.tensor([10.0, 20.0, 40.0, 50.0]), colour=OBJECT_COLOUR, width=2)
    on = _has(out, OBJECT_COLOUR)
    assert _box_of(on) == (20, 10, 50, 40)  # (v_min, u_min, v_max, u_max)
    assert not on[25:45, 15:35].any()  # hollow
    assert torch.equal(draw_box(_blank(), torch.tensor([math.nan, 0.0, 1.0, 1.0])), _blank())
    with pytest.raises(ShapeError, match="box"):
        draw_box(_blank(), torch.zeros(2, 2))


# --------------------------------------------------------------------------------------------- grid, legend
def test_label_grid_places_tiles_with_titles_and_a_legend_around_them():
    marker = (1, 2, 3)
    tile = torch.tensor(marker, dtype=torch.uint8).expand(30, 40, 3).clone()
    other = torch.full((30, 40, 3), 200, dtype=torch.uint8)
    fig = label_grid([[tile, other], [other, other]], row_titles=["first row", "second row"],
                     column_titles=["left", "right"], title="A title", legend=SEGMENTATION_LEGEND)
    assert fig.dtype == torch.uint8 and fig.shape[-1] == 3
    top, left, bottom, right = _box_of(_has(fig, marker))
    assert (bottom - top + 1, right - left + 1) == (30, 40)  # the tile, pasted as it is
    ink = ~_has(fig, PAPER_COLOUR)
    assert ink[:top, left : right + 1].any()  # its column title above it
    assert ink[top : bottom + 1, :left].any()  # its row title left of it
    assert ink[: top // 2].any()  # the figure's title at the top
    legend_area = fig[bottom + 30 + 4 :]  # below both rows
    for _, colour in SEGMENTATION_LEGEND:
        assert _has(legend_area, colour).any()
    plain = label_grid([[tile, other], [other, other]], pad=4)
    assert tuple(plain.shape) == (4 + 2 * (30 + 4), 4 + 2 * (40 + 4), 3)  # no titles: tiles and padding only


def test_label_grid_accepts_a_tensor_and_tiles_of_different_sizes():
    stack = torch.zeros(2, 3, 8, 10, 3, dtype=torch.uint8)
    assert label_grid(stack, pad=0).shape == (16, 30, 3)
    fig = label_grid([[_blank(10, 10), _blank(20, 6)]], pad=0)
    assert fig.shape == (20, 16, 3)


def test_label_grid_refuses_bad_input():
    with pytest.raises(ShapeError, match="rows of one"):
        label_grid([[_blank()], [_blank(), _blank()]])
    with pytest.raises(ShapeError, match="row_titles"):
        label_grid([[_blank()], [_blank()]], row_titles=["only one"])
    with pytest.raises(ShapeError, match="column_titles"):
        label_grid([[_blank()]], column_titles=["a", "b"])
    with pytest.raises(DTypeError, match=r"tiles\[0\]\[0\]"):
        label_grid([[torch.zeros(8, 8, 3)]])
    with pytest.raises(ValueRangeError, match="kind"):
        label_grid([[_blank()]], legend=[("hand", HAND_COLOUR, "circle")])
    with pytest.raises(ValueRangeError, match="colour"):
        label_grid([[_blank()]], legend=[("hand", (0, 0, -1))])
    with pytest.raises(ShapeError):
        label_grid([])


def test_legend_strip_wraps_onto_more_lines_when_narrow():
    entries = [(f"entry number {i}", SERIES_COLOURS[i], "line") for i in range(6)]
    wide, narrow = legend_strip(entries, width=2000), legend_strip(entries, width=200)
    assert wide.shape[1] == 2000 and narrow.shape[1] == 200
    assert narrow.shape[0] > wide.shape[0]
    for _, colour, _ in entries:
        assert _has(narrow, colour).any()
    assert legend_strip([], width=50).shape == (0, 50, 3)


# ------------------------------------------------------------------------------------------------- charts
def test_ticks_and_labels():
    assert _linear_ticks(0.0, 97.0) == (0.0, 100.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0])
    lo, hi, ticks = _log_ticks(0.01, 10.0)
    assert lo < 0.01 and hi > 10.0 and ticks == [0.01, 0.1, 1.0, 10.0]
    assert _log_ticks(6.5, 12.0)[2] == [6.0, 7.0, 8.0, 9.0, 10.0]  # less than a decade: every integer mantissa
    assert _log_ticks(1e-4, 1e4)[2] == [1e-4, 1e-2, 1.0, 1e2, 1e4]  # many decades: every other one
    assert [_format(v) for v in (0.0, 0.001, 2.5, 12345.0, 1e5, 0.0001234, -3.0)] == \
        ["0", "0.001", "2.5", "12345", "1e5", "1.2e-4", "-3"]


def test_line_chart_draws_each_series_and_a_legend():
    series = {"loss": ([1, 2, 3, 4], [4.0, 2.0, 1.0, 0.5]), "sdf": ([1, 2, 3, 4], [0.1, 0.0, math.nan, 0.01])}
    fig = line_chart(series, log_y=True, y_label="loss", colours={"loss": INK_COLOUR}, emphasis=["loss"],
                     size=(400, 300))
    assert fig.shape[1] == 400 and fig.shape[0] > 300  # the legend below the chart
    assert _has(fig[:300], SERIES_COLOURS[0]).any()  # "sdf" took the first series colour, zero and NaN are gaps
    assert _has(fig[300:], SERIES_COLOURS[0]).any()  # and appears in the legend
    assert line_chart(series, legend=False, size=(400, 300)).shape == (300, 400, 3)
    # nothing to plot on a log axis is drawn as empty axes, not an error
    assert line_chart({"zero": ([1, 2], [0.0, 0.0])}, log_y=True).dtype == torch.uint8
    many = {f"s{i}": ([0, 1], [1.0, 2.0]) for i in range(len(SERIES_COLOURS) + 1)}
    assert line_chart(many).shape[1] == 640  # more lines than colours: the colours repeat, dashed


def test_line_chart_log_axis_is_logarithmic():
    # 1, 10, 100 at x = 0, 1, 2 is a straight line on a log axis: the middle point lies halfway up
    fig = line_chart({"a": ([0, 1, 2], [1.0, 10.0, 100.0])}, log_y=True, legend=False, colours={"a": (255, 0, 0)})
    on = _has(fig, (255, 0, 0))
    top, left, bottom, right = _box_of(on)
    mid_x = (left + right) // 2
    ys = torch.nonzero(on[:, mid_x]).flatten().float()
    assert abs(float(ys.mean()) - (top + bottom) / 2) <= 2


def test_line_chart_refuses_bad_input():
    with pytest.raises(ValueRangeError, match="series"):
        line_chart({})
    with pytest.raises(ShapeError, match="x has 3 values, y has 2"):
        line_chart({"a": ([1, 2, 3], [1.0, 2.0])})
    with pytest.raises(ShapeError, match="1-D"):
        line_chart({"a": ([[1, 2]], [[1.0, 2.0]])})
    with pytest.raises(ValueRangeError, match="size"):
        line_chart({"a": ([1, 2], [1.0, 2.0])}, size=(30, 30))


def test_bar_chart_bar_heights_are_proportional_to_the_values():
    red = (255, 0, 0)
    fig = bar_chart(["a", "b", "c"], {"model": [10.0, 20.0, math.nan]}, colours={"model": red}, legend=False,
                    size=(600, 400))
    on = _has(fig, red)
    W = fig.shape[1]
    left_half, middle = on[:, : W // 2], on[:, W // 2 :]
    h1 = int(on[:, _box_of(left_half)[1] + 3].sum())
    h2 = int(on[:, W // 2 + _box_of(middle)[1] + 3].sum())
    assert abs(h2 / h1 - 2.0) < 0.05
    assert not on[:, 5 * W // 6 :].any()  # NaN: no bar
    with_legend = bar_chart(["a"], {"model": [1.0], "const": [2.0]}, colours={"model": red})
    assert _has(with_legend, red).any() and _has(with_legend, SERIES_COLOURS[0]).any()


def test_bar_chart_refuses_bad_input():
    with pytest.raises(ShapeError, match="expected 2 values"):
        bar_chart(["a", "b"], {"model": [1.0]})
    with pytest.raises(ValueRangeError, match="categories"):
        bar_chart([], {"model": []})
    with pytest.raises(ValueRangeError, match="series"):
        bar_chart(["a"], {})


# ------------------------------------------------------------------------------------------ run summaries
def _records(groups: bool) -> list[dict]:
    out = []
    for step in range(1, 21):
        r = {"step": step, "loss": 2.0 / step, "lr": 1e-3, "terms/sdf_hand": 0.5 / step, "terms/heatmap": 0.1}
        if groups:
            r["terms/loss_3d"] = 1.0 / step
        out.append(r)
    out[3]["loss"] = "nan"  # RunLogger writes non-finite values as strings
    return out


def test_loss_curves_one_chart_or_two_when_there_are_groups():
    single = loss_curves(_records(False), title="loss")
    double = loss_curves(_records(True), title="loss")
    assert single.dtype == torch.uint8 and double.shape[0] > 1.5 * single.shape[0]
    assert _has(single, INK_COLOUR).sum() > 100  # the total loss, thick and black
    with pytest.raises(ValueRangeError, match="no record"):
        loss_curves([{"step": 1, "lr": 0.1}])
    with pytest.raises(DTypeError, match="records"):
        loss_curves({"step": 1, "loss": 1.0})


def _results() -> tuple[dict, dict]:
    results = {"rr_mje": 50.0, "occlusion_0-25/num_samples": 6.0, "occlusion_0-25/rr_mje": 40.0,
               "occlusion_0-25/oce": 30.0, "occlusion_50-75/num_samples": 2.0, "occlusion_50-75/rr_mje": 70.0}
    baselines = {"mean_pose": {"occlusion_0-25/rr_mje": 100.0, "occlusion_50-75/rr_mje": 110.0},
                 "wrist": {"occlusion_0-25/rr_mje": 105.0, "occlusion_50-75/rr_mje": 112.0}}
    return results, baselines


def test_error_by_occlusion_draws_the_model_beside_the_constants():
    results, baselines = _results()
    both = error_by_occlusion(results, baselines, title="error")
    assert _has(both, PREDICTED_COLOUR).any()
    assert _has(both, BASELINE_COLOURS[0]).any() and _has(both, BASELINE_COLOURS[1]).any()
    hand_only = error_by_occlusion(results, baselines, metrics=("rr_mje",))
    assert both.shape[1] > 1.5 * hand_only.shape[1]  # one chart per metric present, side by side
    assert error_by_occlusion(results).dtype == torch.uint8  # no baselines


def test_error_by_occlusion_refuses_results_without_the_breakdown():
    results, _ = _results()
    with pytest.raises(ValueRangeError, match="occlusion"):
        error_by_occlusion({"rr_mje": 50.0})
    with pytest.raises(ValueRangeError, match="metrics"):
        error_by_occlusion(results, metrics=("mce",))
    with pytest.raises(DTypeError, match="results"):
        error_by_occlusion([1.0])


# ---------------------------------------------------------------------------------------------- file output
def test_save_figure_writes_a_png_atomically_with_normal_permissions(tmp_path):
    picture = torch.randint(0, 256, (9, 13, 3), dtype=torch.uint8)
    path = save_figure(tmp_path / "sub" / "fig.png", picture)
    assert torch.equal(torch.from_numpy(np.array(Image.open(path))), picture)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["fig.png"]  # no temporary file left
    save_figure(path, Image.new("RGB", (3, 2)))
    assert Image.open(path).size == (3, 2)
    with pytest.raises(DTypeError, match="picture"):
        save_figure(tmp_path / "x.png", torch.zeros(4, 4, 3))


def test_write_loss_curves_beside_the_log(tmp_path):
    from hoimask.engine import RunLogger
    from hoimask.engine.cli import write_loss_curves

    log = RunLogger(tmp_path, tensorboard=False)
    assert write_loss_curves(log.read_records(), tmp_path / "loss_curves.png", title="t") is None
    for step in (1, 2, 3):
        log.log_scalars(step, {"loss": 1.0 / step, "terms/a": 0.5 / step})
    path = write_loss_curves(log.read_records(), tmp_path / "loss_curves.png", title="t")
    assert path == tmp_path / "loss_curves.png" and Image.open(path).format == "PNG"


def test_old_pillow_without_scalable_fonts_falls_back_to_the_bitmap_font(monkeypatch):
    """Pillow < 10.1 (hoimask allows >= 9.0) has no ``load_default(size=...)``: the figures still draw their text."""
    from PIL import ImageFont

    from hoimask.engine.figures import _text

    original = ImageFont.load_default

    def old_load_default(*args, **kwargs):
        if args or kwargs:
            raise TypeError("load_default() takes 0 positional arguments")
        return original()

    monkeypatch.setattr(_text.ImageFont, "load_default", old_load_default)
    _text.font.cache_clear()
    try:
        fig = label_grid([[_blank(20, 20)]], row_titles=["row"], column_titles=["column"], title="title",
                         legend=SEGMENTATION_LEGEND)
        assert (~_has(fig, PAPER_COLOUR)).sum() > 20 * 20 + 50  # text was drawn besides the tile
    finally:
        _text.font.cache_clear()
