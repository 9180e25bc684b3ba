"""SDF export in HOISDF / AlignSDF layouts (``python -m hoimask.data.export_sdf``) and its reader."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from hoimask._checks import FileFormatError
from hoimask.data import (
    HO3D,
    DexYCB,
    SDFSampleFiles,
    export_sdf_samples,
    sample_frame_sdf,
    validate_sample,
)
from hoimask.data.export_sdf import main
from hoimask.data.sdf_files import (
    DONE_LOG_NAME,
    MANIFEST_NAME,
    alignsdf_arrays,
    hoisdf_rows,
    read_sdf_index,
)
from hoimask.data.sdf_samples import ALIGNSDF_VARIANCES, nearest_vertex, normalization
from hoimask.hand import vertex_part_labels
from hoimask.ops import mesh_sdf, mesh_sdf_reference
from hoimask.sdf.meshes import icosphere

# DexYCB fixture frames (hands="mirror"): 0, 2 right hand cameras 0 and 1; 1 has no hand
# annotation; 16 is the left-handed sequence (mirrored by the loader, stored unmirrored).
RIGHT, NO_HAND, LEFT = 0, 1, 16
N = 60  # samples per mesh in the fixture exports (the real default is 20000)


@pytest.fixture(scope="module")
def dexycb(dexycb_root, mano_root):
    with pytest.warns(UserWarning):
        return DexYCB(dexycb_root, mano_root=mano_root, hands="mirror", num_sdf_points=40, num_object_points=16)


@pytest.fixture(scope="module")
def exported(dexycb, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdf") / "out"
    summary = export_sdf_samples(dexycb, out, num_samples=N, layout="both", frames=[RIGHT, NO_HAND, 2, LEFT], progress=False)
    return out, summary


def small_frame(seed: int = 0):
    """A closed 'hand' (ellipsoid, 162 vertices, part labels from fake weights) beside an icosphere object."""
    hv, hf = icosphere(2, 1.0)
    hv = hv * torch.tensor([0.05, 0.03, 0.02], dtype=hv.dtype) + torch.tensor([0.0, 0.0, 0.5], dtype=hv.dtype)
    w = torch.rand(hv.shape[0], 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ov, of = icosphere(1, 0.03)
    return hv, hf, w, ov + torch.tensor([0.06, 0.01, 0.52], dtype=ov.dtype), of


def test_layouts_have_the_documented_keys_dtypes_and_shapes(exported, dexycb):
    out, summary = exported
    assert summary.written == 3 and summary.skipped == {dexycb.frame_name(NO_HAND): "no hand annotation"}
    names = sorted(dexycb.frame_name(i) for i in (RIGHT, 2, LEFT))
    assert sorted(p.stem for p in (out / "sdf_processed").glob("*.npy")) == names
    index = np.load(out / "sdf_index.npy", allow_pickle=False)
    assert index.dtype == np.int64 and index.tolist() == [[N, N]] * 3
    for name in names:
        rows = np.load(out / "sdf_processed" / f"{name}.npy", allow_pickle=False)
        assert rows.dtype == np.float32 and rows.shape == (2 * N, 6)
        norm = np.load(out / "norm" / f"{name}.npz")
        assert set(norm.files) == {"offset", "scale"}
        assert (norm["offset"].dtype, norm["offset"].shape, norm["scale"].dtype, norm["scale"].shape) == (
            np.float32, (3,), np.float32, (1,))
        for folder in ("sdf_hand", "sdf_obj"):
            z = np.load(out / folder / f"{name}.npz")
            assert set(z.files) == {"pos", "neg", "pos_other", "neg_other", "lab_pos", "lab_neg",
                                    "lab_pos_other", "lab_neg_other"}
            assert len(z["pos"]) + len(z["neg"]) == N
            for key in ("pos", "neg"):
                n = len(z[key])
                assert z[key].dtype == np.float32 and z[key].shape == (n, 4)
                assert z[f"{key}_other"].dtype == np.float32 and z[f"{key}_other"].shape == (n, 1)
                assert z[f"lab_{key}"].dtype == np.int32 and z[f"lab_{key}"].shape == (n, 4)
                assert z[f"lab_{key}_other"].shape == (n, 4)
            assert (z["pos"][:, 3] > 0).all() and (z["neg"][:, 3] <= 0).all()
            hand_labels = z["lab_pos"] if folder == "sdf_hand" else z["lab_pos_other"]
            other = z["lab_pos_other"] if folder == "sdf_hand" else z["lab_pos"]
            assert (other == 0).all() and (hand_labels[:, 2:] == 0).all()
            assert ((hand_labels[:, 1] >= 0) & (hand_labels[:, 1] <= 15)).all()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete" and manifest["config"]["num_samples"] == N


def test_signed_distances_equal_the_brute_force_reference():
    hv, hf, w, ov, of = small_frame()
    s = sample_frame_sdf(hv, hf, w, ov, of, num_samples=300, generator=torch.Generator().manual_seed(1))
    p = s.points.double()[None]
    for got, (v, f) in ((s.sdf_hand, (hv, hf)), (s.sdf_object, (ov, of))):
        ref = mesh_sdf_reference(p, v[None], f)[0]
        assert (got.double() - ref).abs().max() < 2e-6
        assert torch.equal(got, mesh_sdf(s.points[None], v.float()[None], f)[0])
    assert s.points.shape == (600, 3) and torch.isfinite(s.sdf_hand).all()  # nothing dropped


def test_hand_samples_come_first_with_alignsdf_counts_and_spread():
    hv, hf, w, ov, of = small_frame()
    n = 1000
    s = sample_frame_sdf(hv, hf, w, ov, of, num_samples=n, generator=torch.Generator().manual_seed(2))
    pairs = int(47 * n / 50) // 2  # 470 surface points, perturbed twice; 60 uniform
    assert s.num_hand == n and s.num_object == n
    offset, scale = normalization(hv, ov)
    assert torch.allclose(s.offset, offset) and s.scale == scale
    for block, own in ((slice(0, n), s.sdf_hand), (slice(n, 2 * n), s.sdf_object)):
        d = own[block].double() * scale  # normalised units
        first, second = d[: 2 * pairs : 2], d[1 : 2 * pairs : 2]
        # Distance to the surface is at most the perturbation: |d| <= sigma * chi_3 quantile.
        assert first.abs().max() < 5 * math.sqrt(ALIGNSDF_VARIANCES[0]) and second.abs().max() < 5 * math.sqrt(ALIGNSDF_VARIANCES[1])
        assert second.abs().mean() < first.abs().mean() / 2
        u = (s.points[block][2 * pairs :].double() + offset) * scale
        assert u.shape == (n - 2 * pairs, 3) and bool((u.abs() <= 1 + 1e-5).all())
    # The hand block is near the hand, the object block near the object.
    assert s.sdf_hand[: 2 * pairs].abs().median() < s.sdf_hand[n : n + 2 * pairs].abs().median()
    rows = hoisdf_rows(s)
    assert (rows[n:, 5] == -1).all() and (rows[:n, 3] > 0).sum() == (s.sdf_hand[:n] > 0).sum()
    pos = int((s.sdf_hand[:n] > 0).sum())
    assert (rows[:pos, 3] > 0).all() and (rows[pos:n, 3] <= 0).all()  # AlignSDF's pos, then neg


def test_part_labels_are_those_of_the_nearest_vertex():
    hv, hf, w, ov, of = small_frame(seed=3)
    s = sample_frame_sdf(hv, hf, w, ov, of, num_samples=400, generator=torch.Generator().manual_seed(4))
    d = torch.cdist(s.points.double(), hv.float().double())
    best2 = d.topk(2, largest=False)
    clear = (best2.values[:, 1] - best2.values[:, 0]) > 1e-6
    coarse, fine = vertex_part_labels(w)
    assert clear.float().mean() > 0.95
    assert torch.equal(s.fine_part[clear], fine[best2.indices[clear, 0]])
    assert torch.equal(s.coarse_part[clear], coarse[best2.indices[clear, 0]])
    assert len(set(s.fine_part.tolist())) > 4  # the fake weights give many parts
    # HOISDF's label: fine part, -1 beyond 0.05 normalised units and on object rows.
    rows = hoisdf_rows(s)
    hand = rows[: s.num_hand]
    far = np.abs(hand[:, 3]) * s.scale > 0.05
    assert (hand[far, 5] == -1).all() and (hand[~far, 5] >= 0).all() and (~far).any()


@pytest.mark.parametrize("search", ["torch", "bvh"])
def test_nearest_vertex_is_exact_with_and_without_clusters(search, monkeypatch):
    from hoimask.ops.mesh_sdf.bvh import numba_available

    if search == "bvh" and not numba_available():
        pytest.skip("needs numba (the 'fast' extra)")
    monkeypatch.setenv("HOIMASK_DISABLE_NUMBA", "1" if search == "torch" else "0")
    g = torch.Generator().manual_seed(5)
    for V in (40, 700):
        verts = torch.randn(V, 3, generator=g) * 0.05 + 0.6
        pts = torch.randn(500, 3, generator=g) * 0.1 + 0.6
        got = nearest_vertex(pts, verts)
        d = torch.cdist(pts.double(), verts.double())
        assert torch.allclose(d.gather(1, got[:, None])[:, 0], d.min(1).values, atol=1e-7)


def test_alignsdf_arrays_invert_to_camera_metres_as_hoisdf_does():
    hv, hf, w, ov, of = small_frame()
    s = sample_frame_sdf(hv, hf, w, ov, of, num_samples=200, generator=torch.Generator().manual_seed(6))
    a = alignsdf_arrays(s)
    scale, offset = a["norm"]["scale"].astype(np.float64), a["norm"]["offset"].astype(np.float64)
    hand = np.concatenate([a["sdf_hand"]["pos"], a["sdf_hand"]["neg"]])
    other = np.concatenate([a["sdf_hand"]["pos_other"], a["sdf_hand"]["neg_other"]])
    cam = hand[:, :3] / scale - offset  # HOISDF tool/pre_process_sdf.py
    rows = hoisdf_rows(s)[: s.num_hand]
    assert np.abs(cam - rows[:, :3]).max() < 1e-6
    assert np.abs(hand[:, 3] / scale - rows[:, 3]).max() < 1e-7 and np.abs(other[:, 0] / scale - rows[:, 4]).max() < 1e-7


def test_resume_skips_done_frames_and_ignores_a_torn_log_line(dexycb, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_sdf_samples(dexycb, out, num_samples=N, frames=[RIGHT], progress=False)
    before = (out / "sdf_processed" / f"{dexycb.frame_name(RIGHT)}.npy").stat().st_mtime_ns
    with open(out / DONE_LOG_NAME, "a") as fh:
        fh.write('{"name": "torn')  # a run killed while writing its log
    import hoimask.data.sdf_export as mod

    calls = []
    real = mod._export_frame
    monkeypatch.setattr(mod, "_export_frame", lambda ds, i, *a: calls.append(i) or real(ds, i, *a))
    summary = export_sdf_samples(dexycb, out, num_samples=N, frames=[RIGHT, 2], progress=False)
    assert calls == [2] and summary.resumed == 1 and summary.written == 1 and summary.total == 2
    assert (out / "sdf_processed" / f"{dexycb.frame_name(RIGHT)}.npy").stat().st_mtime_ns == before
    assert np.load(out / "sdf_index.npy").shape == (2, 2)


def test_refuses_to_overwrite_foreign_files_or_another_export(dexycb, tmp_path):
    out = tmp_path / "out"
    (out / "sdf_processed").mkdir(parents=True)
    foreign = out / "sdf_processed" / f"{dexycb.frame_name(RIGHT)}.npy"
    np.save(foreign, np.zeros((3, 6), np.float32))
    with pytest.raises(FileFormatError, match="not written by a hoimask export.*overwrite") as info:
        export_sdf_samples(dexycb, out, num_samples=N, frames=[RIGHT], progress=False)
    assert str(foreign) in str(info.value)
    assert np.load(foreign).shape == (3, 6)  # untouched
    export_sdf_samples(dexycb, out, num_samples=N, frames=[RIGHT], overwrite=True, progress=False)
    assert np.load(foreign).shape == (2 * N, 6)
    with pytest.raises(FileFormatError, match="other options \\(differing: num_samples"):
        export_sdf_samples(dexycb, out, num_samples=N + 1, frames=[RIGHT], progress=False)


def test_a_failed_write_leaves_no_partial_file_and_the_frame_is_redone(dexycb, tmp_path, monkeypatch):
    out = tmp_path / "out"
    name = dexycb.frame_name(2)
    real_save = np.save

    def failing_save(fh, arr, allow_pickle=False):
        if getattr(fh, "name", "").find(name) >= 0:
            fh.write(b"\x93NUMPY partial")
            raise OSError(28, "No space left on device")
        return real_save(fh, arr, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match=f"frame '{name}'.*could not write .*{name}.npy"):
        export_sdf_samples(dexycb, out, num_samples=N, layout="both", frames=[RIGHT, 2], progress=False)
    monkeypatch.setattr(np, "save", real_save)
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and not (out / "sdf_processed" / f"{name}.npy").exists()
    log = (out / DONE_LOG_NAME).read_text()
    assert dexycb.frame_name(RIGHT) in log and name not in log
    summary = export_sdf_samples(dexycb, out, num_samples=N, layout="both", frames=[RIGHT, 2], progress=False)
    assert summary.written == 1 and np.load(out / "sdf_processed" / f"{name}.npy").shape == (2 * N, 6)


def test_data_errors_name_the_frame_and_the_file(dexycb_root, mano_root, tmp_path):
    root = tmp_path / "dex"
    shutil.copytree(dexycb_root, root)
    with pytest.warns(UserWarning):
        ds = DexYCB(root, mano_root=mano_root, num_sdf_points=0, num_object_points=1)
    bad = ds._frame_dir(ds.frames[2])[2] / "labels_000000.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(FileFormatError) as info:
        export_sdf_samples(ds, tmp_path / "out", num_samples=N, frames=[0, 2], progress=False)
    msg = str(info.value)
    assert f"frame '{ds.frame_name(2)}'" in msg and str(bad) in msg


def test_reader_round_trip_gives_the_targets_the_loader_computes(exported, dexycb_root, mano_root):
    out, _ = exported
    files = SDFSampleFiles(out)
    assert files.naming == "hoisdf" and len(files) == 3
    with pytest.warns(UserWarning):
        ds = DexYCB(dexycb_root, mano_root=mano_root, hands="mirror", num_sdf_points=40, num_object_points=16,
                    sdf_source=files)
    for index in (RIGHT, LEFT):
        s = ds[index]
        validate_sample(s)
        assert s["sdf_points"].shape == (40, 3)
        m = ds.frame_meshes(index)
        hv, ov = m.hand_vertices.float(), m.object_vertices.float()
        hf, of = m.hand_faces, m.object_faces
        if m.mirrored:  # the loader mirrors left hands: x -> -x, faces flipped
            flip = torch.tensor([-1.0, 1.0, 1.0])
            hv, ov, hf, of = hv * flip, ov * flip, hf.flip(-1), of.flip(-1)
        p = s["sdf_points"][None]
        assert torch.allclose(s["sdf_hand"], mesh_sdf(p, hv[None], hf)[0], atol=2e-6)
        assert torch.allclose(s["sdf_object"], mesh_sdf(p, ov[None], of)[0], atol=2e-6)
        # 75 % of the rows from the hand block (HOISDF's 600 + 200).
        rows = files.frame(ds.frame_name(index))
        hand_pts = rows.points[: rows.num_hand] * (torch.tensor([-1.0, 1, 1]) if m.mirrored else 1)
        from_hand = (s["sdf_points"][:, None] == hand_pts[None]).all(-1).any(1).sum()
        assert int(from_hand) == 30
    # The same frames computed on the fly have targets of the same kind (up to sampling).
    with pytest.warns(UserWarning):
        live = DexYCB(dexycb_root, mano_root=mano_root, hands="mirror", num_sdf_points=40, num_object_points=16)[RIGHT]
    assert live["sdf_points"].shape == s["sdf_points"].shape and torch.isfinite(live["sdf_hand"]).all()


def test_ho3d_export_and_reader(ho3d_root, mano_root, tmp_path):
    train = HO3D(ho3d_root, mano_root=mano_root, split="train", num_sdf_points=32, num_object_points=16)
    assert train.frame_name(1) == "SEQA_0001"
    export_sdf_samples(train, tmp_path / "out", num_samples=N, index_format="dict", progress=False)
    index = read_sdf_index(tmp_path / "out" / "sdf_index.npy")  # HOISDF's HO3D loader: a pickled dict
    assert index == {"SEQA_0000": (N, N), "SEQA_0001": (N, N)}
    ds = HO3D(ho3d_root, mano_root=mano_root, split="train", num_sdf_points=32, num_object_points=16,
              sdf_source=SDFSampleFiles(tmp_path / "out"))
    s = ds[1]
    m = train.frame_meshes(1)
    assert torch.allclose(s["sdf_hand"], mesh_sdf(s["sdf_points"][None], m.hand_vertices.float()[None], m.hand_faces)[0], atol=2e-6)


def test_reader_reads_hoisdf_own_folders_and_names_bad_files(tmp_path):
    (tmp_path / "sdf_processed").mkdir()
    rows = np.zeros((5, 6), np.float32)
    rows[:, 3] = np.arange(5)
    np.save(tmp_path / "sdf_processed" / "B_1.npy", rows)
    np.save(tmp_path / "sdf_processed" / "A_0.npy", rows[:4])
    np.save(tmp_path / "sdf_index.npy", np.array([[3, 1], [2, 3]]))  # sorted names: A_0, B_1
    files = SDFSampleFiles(tmp_path, hand_share=0.5)
    assert files.names == ["A_0", "B_1"] and files.frame("B_1").num_hand == 2
    pts, sh, so = files.targets("B_1", 4, generator=torch.Generator().manual_seed(0))
    assert sorted(sh.tolist()[:2]) == [0.0, 1.0] and set(sh.tolist()[2:]) <= {2.0, 3.0, 4.0}
    np.save(tmp_path / "sdf_index.npy", np.array([[3, 1], [2, 2]]))
    with pytest.raises(FileFormatError, match="B_1.npy: frame 'B_1' expected float rows of shape \\(4, 6\\)"):
        SDFSampleFiles(tmp_path).frame("B_1")
    with pytest.raises(FileFormatError, match="frame 'C_2' is not listed"):
        SDFSampleFiles(tmp_path).frame("C_2")
    np.save(tmp_path / "sdf_index.npy", np.array([[3, 1]]))
    with pytest.raises(FileFormatError, match="1 rows but .* holds 2 .npy files"):
        SDFSampleFiles(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "argument --workers: expected an integer >= 1, got 0"),
    (["--num-samples", "-3"], "argument --num-samples: expected an integer >= 1, got -3"),
    (["--limit", "0"], "argument --limit: expected an integer >= 1, got 0"),
    (["--layout", "deepsdf"], "argument --layout: invalid choice: 'deepsdf'"),
    (["--dataset", "ho3d", "--split", "evaluation"], "argument --split: expected one of ['train'] for --dataset ho3d"),
])
def test_cli_bad_flags_exit_2_with_one_line_naming_the_flag(capsys, tmp_path, argv, message):
    base = {"--dataset": "dexycb", "--root": str(tmp_path), "--mano-root": str(tmp_path), "--out": str(tmp_path / "o")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    with pytest.raises(SystemExit) as info:
        main([x for kv in base.items() for x in kv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len([line for line in err.splitlines() if "error:" in line]) == 1


def test_cli_data_error_is_one_error_line(capsys, tmp_path):
    code = main(["--dataset", "dexycb", "--root", str(tmp_path / "absent"), "--mano-root", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "absent" in err


@pytest.mark.slow
def test_cli_parallel_export_equals_serial(dexycb_root, mano_root, tmp_path, capsys):
    common = ["--dataset", "dexycb", "--root", str(dexycb_root), "--mano-root", str(mano_root),
              "--num-samples", str(N), "--limit", "6", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "serial")]) == 0
    assert main(common + ["--out", str(tmp_path / "parallel"), "--workers", "2"]) == 0
    assert "wrote 3 frames" in capsys.readouterr().out
    serial = sorted((tmp_path / "serial" / "sdf_processed").glob("*.npy"))
    assert len(serial) == 3
    for path in serial:
        assert np.array_equal(np.load(path), np.load(tmp_path / "parallel" / "sdf_processed" / path.name))
