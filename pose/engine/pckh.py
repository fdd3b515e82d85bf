"""MPII PCKh evaluation, as the official HRNet / SimpleBaseline ``MPIIDataset.evaluate``.

Ground truth is the official ``annot/gt_{set}.mat`` (e.g. ``gt_valid.mat``), read with
``scipy.io.loadmat``:

- ``dataset_joints`` (1, 16) joint names ('rank', 'rkne', ..., 'head', ..., 'lwri');
- ``jnt_missing`` (16, N) 1 where the joint is not labelled;
- ``pos_gt_src`` (16, 2, N) joint positions, 1-based (MATLAB) image px;
- ``headboxes_src`` (2, 2, N) head box corners: ``[0]`` top-left (x, y), ``[1]`` bottom-right.

A joint of person n counts as correct at threshold t when ``|pred - gt| / (0.6 * |head box
diagonal|) <= t`` (``SC_BIAS`` 0.6); only labelled joints count. Per-joint PCKh is the percentage
of its labelled instances that are correct. The table (official ``name_value``):

- Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle: PCKh@0.5 (left and right averaged);
- Mean: PCKh@0.5 averaged over joints weighted by their labelled counts, pelvis and thorax left out;
- Mean@0.1: the same mean at a low threshold. The official code takes row 11 of its threshold
  grid ``arange(0, 0.51, 0.01)``, i.e. threshold 0.11, not 0.10. ``Mean@0.1`` here reproduces
  that (the published Mean@0.1 figures were computed so); ``Mean@0.1 (exact)`` is the mean at 0.10.

Predictions are the network's joints in the MPII order of ``pose.keypoints.MPII16`` (the order of
``dataset_joints`` in the official files), one person per annotation in annotation order, and are
saved as the official ``pred.mat`` (``preds`` (N, 16, 2), 1-based) for the test-server submission.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pose.atomic_io import atomic_file
from pose.engine.tables import metrics_table

SC_BIAS = 0.6
THRESHOLD = 0.5
# The official low threshold: row 11 of arange(0, 0.51, 0.01) (0.11 up to float rounding).
OFFICIAL_LOW_THRESHOLD = float(np.arange(0.0, 0.5 + 0.01, 0.01)[11])
MAIN_METRIC = "Mean"
TABLE_NAMES: tuple[str, ...] = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")
# The official gt files' joint names, in the order of pose.keypoints.MPII16.
GT_JOINT_NAMES: tuple[str, ...] = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                                   "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
# Table rows: (name, joints averaged) by gt joint name.
_PARTS = (("Head", ("head",)), ("Shoulder", ("lsho", "rsho")), ("Elbow", ("lelb", "relb")),
          ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")), ("Knee", ("lkne", "rkne")),
          ("Ankle", ("lank", "rank")))
# Left out of the means (official: mask[6:8]).
_UNSCORED = ("pelv", "thor")


class MpiiEvalError(ValueError):
    """The MPII ground-truth or prediction file cannot be evaluated; the message names it and the problem."""


def _scipy_io():
    try:
        import scipy.io
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("MPII evaluation reads and writes .mat files with scipy: "
                                  "pip install scipy (or pip install -e .[mpii])", name=exc.name) from None
    return scipy.io


@dataclass(frozen=True)
class MpiiGroundTruth:
    """The content of an official ``gt_{set}.mat`` (see the module docstring for the layout)."""

    joint_names: tuple[str, ...]
    jnt_missing: np.ndarray    # (16, N)
    pos_gt_src: np.ndarray     # (16, 2, N), 1-based px
    headboxes_src: np.ndarray  # (2, 2, N), 1-based px

    @property
    def num_people(self) -> int:
        return int(self.jnt_missing.shape[1])


def _joint_name(cell) -> str:
    value = np.asarray(cell).ravel()
    return str(value[0]) if value.size else ""


def load_mpii_gt(path: str | os.PathLike) -> MpiiGroundTruth:
    """Read and check an official ``gt_{set}.mat``. Errors name the file and the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII ground-truth file not found: {path} (the official annot/gt_valid.mat)")
    try:
        mat = _scipy_io().loadmat(str(path))
    except (ValueError, TypeError, OSError) as exc:
        raise MpiiEvalError(f"{path}: not a readable .mat file ({exc})") from None
    missing = [k for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src") if k not in mat]
    if missing:
        raise MpiiEvalError(f"{path}: lacks {missing}; expected the official gt_valid.mat keys dataset_joints, "
                            "jnt_missing, pos_gt_src, headboxes_src")
    names = tuple(_joint_name(c) for c in np.asarray(mat["dataset_joints"], dtype=object).ravel())
    if names != GT_JOINT_NAMES:
        raise MpiiEvalError(f"{path}: dataset_joints is {list(names)}; expected the official MPII order "
                            f"{list(GT_JOINT_NAMES)}")
    jnt_missing = np.asarray(mat["jnt_missing"], dtype=np.float64)
    pos = np.asarray(mat["pos_gt_src"], dtype=np.float64)
    heads = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if jnt_missing.ndim != 2 or jnt_missing.shape[0] != 16:
        raise MpiiEvalError(f"{path}: jnt_missing has shape {jnt_missing.shape}; expected (16, N)")
    n = jnt_missing.shape[1]
    if pos.shape != (16, 2, n):
        raise MpiiEvalError(f"{path}: pos_gt_src has shape {pos.shape}; expected (16, 2, {n})")
    if heads.shape != (2, 2, n):
        raise MpiiEvalError(f"{path}: headboxes_src has shape {heads.shape}; expected (2, 2, {n})")
    return MpiiGroundTruth(names, jnt_missing, pos, heads)


def pckh_per_joint(preds: np.ndarray, gt: MpiiGroundTruth, thresholds: np.ndarray) -> np.ndarray:
    """PCKh (T, 16) in percent at each of ``thresholds`` (T,) of ``preds`` (N, 16, 2), 1-based px.

    A joint without any labelled instance gets NaN (the official code divides by a zero count).
    """
    preds = np.asarray(preds, dtype=np.float64)
    if preds.shape != (gt.num_people, 16, 2):
        raise MpiiEvalError(f"predictions have shape {preds.shape}; the ground truth has {gt.num_people} "
                            "people, so (N, 16, 2) with N = that is expected")
    visible = 1.0 - gt.jnt_missing                                    # (16, N)
    err = np.linalg.norm(preds.transpose(1, 2, 0) - gt.pos_gt_src, axis=1)  # (16, N)
    head = SC_BIAS * np.linalg.norm(gt.headboxes_src[1] - gt.headboxes_src[0], axis=0)  # (N,)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = err / head[None, :] * visible
        count = visible.sum(axis=1)                                   # (16,)
        hits = [((scaled <= t) * visible).sum(axis=1) for t in np.asarray(thresholds, dtype=np.float64)]
        return 100.0 * np.stack(hits) / count


def _weighted_mean(pckh: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(pckh * weights))


def pckh_table(preds: np.ndarray, gt: MpiiGroundTruth, threshold: float = THRESHOLD) -> dict[str, float]:
    """The official table of ``preds`` (N, 16, 2), 1-based px -> {name: percent}.

    Keys: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1 (official: threshold
    0.11, see the module docstring), then 'Mean@0.1 (exact)' and each joint's PCKh as
    'PCKh <gt joint name>' (e.g. 'PCKh lwri').
    """
    pck = pckh_per_joint(preds, gt, np.array([threshold, OFFICIAL_LOW_THRESHOLD, 0.1]))
    index = {name: k for k, name in enumerate(gt.joint_names)}
    scored = np.ones(16, bool)
    scored[[index[n] for n in _UNSCORED]] = False
    counts = np.where(scored, (1.0 - gt.jnt_missing).sum(axis=1), 0.0)
    weights = counts / counts.sum()
    table = {name: float(np.mean([pck[0, index[j]] for j in joints])) for name, joints in _PARTS}
    table["Mean"] = _weighted_mean(np.where(scored, pck[0], 0.0), weights)
    table["Mean@0.1"] = _weighted_mean(np.where(scored, pck[1], 0.0), weights)
    table["Mean@0.1 (exact)"] = _weighted_mean(np.where(scored, pck[2], 0.0), weights)
    table.update({f"PCKh {name}": float(pck[0, k]) for k, name in enumerate(gt.joint_names)})
    return table


def save_pred_mat(path: str | os.PathLike, coords: np.ndarray) -> Path:
    """Write the official ``pred.mat``: ``preds`` (N, 16, 2) = ``coords`` (0-based image px) + 1."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 3 or coords.shape[2] != 2:
        raise ValueError(f"coords must be (N, K, 2) image px, got {coords.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy_io = _scipy_io()
    with atomic_file(path, "wb") as fh:
        scipy_io.savemat(fh, {"preds": coords + 1.0})
    return path


def format_pckh_table(table: dict[str, float], name: str | None = None) -> str:
    """The official columns as a Markdown table (two decimals), optionally with a first column ``name``."""
    return metrics_table(table, TABLE_NAMES, name=name, decimals=2)
