"""MPII PCKh: the official table on a small file in the gt_valid.mat layout, against a plain
re-statement of the official computation, and the official pred.mat."""

import math

import numpy as np
import pytest

scipy_io = pytest.importorskip("scipy.io", reason="scipy (the mpii extra) is needed for MPII's .mat files")

from pose.engine.pckh import (  # noqa: E402
    GT_JOINT_NAMES,
    TABLE_NAMES,
    MpiiEvalError,
    format_pckh_table,
    load_mpii_gt,
    pckh_table,
    save_pred_mat,
)

N = 40


def _write_gt(path, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(50, 600, size=(16, 2, N))
    corner = rng.uniform(50, 500, size=(2, N))
    size = rng.uniform(20, 80, size=(2, N))
    heads = np.stack([corner, corner + size])          # (2, 2, N)
    missing = (rng.random((16, N)) < 0.2).astype(np.float64)
    missing[:, 0] = 0.0
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(GT_JOINT_NAMES)
    scipy_io.savemat(str(path), {"dataset_joints": names, "jnt_missing": missing, "pos_gt_src": pos,
                                 "headboxes_src": heads})
    return pos, heads, missing


def _predictions(pos, heads, seed=1):
    """Predictions whose errors, in head sizes, spread over 0 .. 0.8, with some just above 0.10
    (right at 0.11 they would be read differently by the official 0.11 and an exact 0.10)."""
    rng = np.random.default_rng(seed)
    head = 0.6 * np.linalg.norm(heads[1] - heads[0], axis=0)       # (N,)
    frac = rng.uniform(0.0, 0.8, size=(N, 16))
    frac[: N // 2, :4] = rng.uniform(0.1005, 0.1095, size=(N // 2, 4))
    angle = rng.uniform(0, 2 * np.pi, size=(N, 16))
    err = frac * head[:, None]
    gt = pos.transpose(2, 0, 1)                                     # (N, 16, 2)
    return gt + np.stack([err * np.cos(angle), err * np.sin(angle)], axis=2)


def _reference(preds, pos, heads, missing, threshold):
    """The official computation written out: per labelled joint, error / (0.6 x head-box diagonal)
    <= threshold; per-joint percentages; parts average left and right; the mean weights joints by
    their labelled counts without pelvis and thorax."""
    correct, count = [0] * 16, [0] * 16
    for n in range(N):
        head = 0.6 * math.hypot(heads[1, 0, n] - heads[0, 0, n], heads[1, 1, n] - heads[0, 1, n])
        for j in range(16):
            if missing[j, n]:
                continue
            count[j] += 1
            d = math.hypot(preds[n, j, 0] - pos[j, 0, n], preds[n, j, 1] - pos[j, 1, n])
            correct[j] += d / head <= threshold
    pck = [100.0 * c / k for c, k in zip(correct, count)]
    j = {name: i for i, name in enumerate(GT_JOINT_NAMES)}
    parts = {"Head": ["head"], "Shoulder": ["lsho", "rsho"], "Elbow": ["lelb", "relb"], "Wrist": ["lwri", "rwri"],
             "Hip": ["lhip", "rhip"], "Knee": ["lkne", "rkne"], "Ankle": ["lank", "rank"]}
    table = {name: sum(pck[j[x]] for x in xs) / len(xs) for name, xs in parts.items()}
    scored = [i for i in range(16) if GT_JOINT_NAMES[i] not in ("pelv", "thor")]
    table["Mean"] = sum(pck[i] * count[i] for i in scored) / sum(count[i] for i in scored)
    return table


def test_table_equals_the_official_computation(tmp_path):
    pos, heads, missing = _write_gt(tmp_path / "gt_valid.mat")
    preds = _predictions(pos, heads)
    gt = load_mpii_gt(tmp_path / "gt_valid.mat")
    table = pckh_table(preds, gt)
    at_05 = _reference(preds, pos, heads, missing, 0.5)
    for name in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"):
        assert table[name] == pytest.approx(at_05[name], abs=1e-9), name
    # Official Mean@0.1: the grid arange(0, 0.51, 0.01) at row 11, i.e. threshold 0.11.
    assert table["Mean@0.1"] == pytest.approx(_reference(preds, pos, heads, missing, 0.11)["Mean"], abs=1e-9)
    assert table["Mean@0.1 (exact)"] == pytest.approx(_reference(preds, pos, heads, missing, 0.10)["Mean"],
                                                      abs=1e-9)
    assert table["Mean@0.1"] > table["Mean@0.1 (exact)"]  # the errors in (0.10, 0.11) head sizes
    assert 20 < table["Mean"] < 90  # neither all right nor all wrong: the comparison means something
    printed = format_pckh_table(table, name="net")
    assert all(n in printed for n in TABLE_NAMES) and f"{table['Mean']:.2f}" in printed


def test_pelvis_and_thorax_are_not_in_the_mean(tmp_path):
    pos, heads, _ = _write_gt(tmp_path / "gt_valid.mat")
    gt = load_mpii_gt(tmp_path / "gt_valid.mat")
    preds = _predictions(pos, heads)
    moved = preds.copy()
    moved[:, 6:8] += 1000.0
    assert pckh_table(moved, gt)["Mean"] == pckh_table(preds, gt)["Mean"]
    moved[:, 9] += 1000.0
    assert pckh_table(moved, gt)["Head"] == 0.0


def test_pred_mat_is_official(tmp_path):
    coords = np.random.default_rng(0).uniform(0, 500, size=(7, 16, 2))
    path = save_pred_mat(tmp_path / "pred.mat", coords)
    loaded = scipy_io.loadmat(str(path))["preds"]
    assert loaded.shape == (7, 16, 2)
    np.testing.assert_array_equal(loaded, coords + 1.0)  # back to MATLAB's 1-based pixels
    assert [p.name for p in tmp_path.iterdir()] == ["pred.mat"]


def test_bad_gt_files_are_named(tmp_path):
    _write_gt(tmp_path / "gt_valid.mat")
    mat = scipy_io.loadmat(str(tmp_path / "gt_valid.mat"))
    del mat["headboxes_src"]
    scipy_io.savemat(str(tmp_path / "bad.mat"), {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(MpiiEvalError, match=r"bad.mat: lacks \['headboxes_src'\]"):
        load_mpii_gt(tmp_path / "bad.mat")
    with pytest.raises(FileNotFoundError, match="gt_nope.mat"):
        load_mpii_gt(tmp_path / "gt_nope.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(MpiiEvalError, match="junk.mat: not a readable .mat file"):
        load_mpii_gt(tmp_path / "junk.mat")
    gt = load_mpii_gt(tmp_path / "gt_valid.mat")
    with pytest.raises(MpiiEvalError, match=f"has {N} people"):
        pckh_table(np.zeros((N - 1, 16, 2)), gt)
