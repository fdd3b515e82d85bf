"""Per-keypoint OKS accuracy of a COCO keypoint results file against its ground truth.

For each joint: the fraction of labelled ground-truth joints, in people matched greedily by OKS,
whose own OKS term (the per-joint factor inside COCO's OKS, ``pose.engine.nms.joint_similarity``)
is at least a threshold. ``tools/visualize.py accuracy`` prints it and draws it as a bar chart
(``pose.vis.plot_keypoint_accuracy``).
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pose.data.json_io import load_json
from pose.engine.nms import joint_similarity, mean_similarity
from pose.engine.results_io import check_results
from pose.keypoints import KeypointSet, KeypointSetError, from_categories


@dataclass(frozen=True)
class KeypointAccuracy:
    """Per-keypoint OKS accuracy of a results file against COCO-format ground truth.

    ``accuracy[k] = correct[k] / labelled[k]``: over all ground-truth people (non-crowd, at least
    one labelled joint) whose joint k is labelled, the fraction that were matched to a predicted
    person whose joint k has an OKS term ``exp(-d^2 / (2 s^2 kappa_k^2)) >= term_thresh``, where d
    is the image-px distance, ``s^2`` the ground-truth area and ``kappa_k = 2 * sigma_k`` (the
    keypoint set's per-joint sigmas, for COCO pycocotools' ``kpt_oks_sigmas``). This is exactly the
    per-joint factor inside COCO's OKS, so 0.5 means "this joint alone would pass an OKS threshold of 0.5".
    Unmatched ground-truth people count as failures for each of their labelled joints.
    """

    names: tuple[str, ...]
    accuracy: np.ndarray  # (K,) in [0, 1]; NaN where no ground truth labels the joint
    correct: np.ndarray  # (K,) int
    labelled: np.ndarray  # (K,) int
    mean_term: np.ndarray  # (K,) mean OKS term over matched labelled joints (NaN if none)
    num_gt: int
    num_matched: int
    term_thresh: float
    match_oks: float
    sides: tuple[str, ...] = ()  # 'left' / 'right' / 'centre' per joint (bar colours)

    def to_dict(self) -> dict:
        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)
        return {
            "definition": "fraction of labelled ground-truth joints, in people matched greedily by "
                          f"OKS (>= {self.match_oks}), whose OKS term exp(-d^2/(2 s^2 k^2)) >= "
                          f"{self.term_thresh}",
            "num_gt": self.num_gt, "num_matched": self.num_matched,
            "keypoints": {name: {"accuracy": num(a), "correct": int(c), "labelled": int(n),
                                 "mean_term": num(m)}
                          for name, a, c, n, m in zip(self.names, self.accuracy, self.correct,
                                                      self.labelled, self.mean_term)},
            "mean_accuracy": num(float(np.nanmean(self.accuracy)) if np.isfinite(self.accuracy).any()
                                 else float("nan")),
        }


def _people_by_image(gt: Mapping, results: list[dict]) -> tuple[dict, dict]:
    """Ground-truth people (keypoints (K, 3), area) with a labelled joint, and person results, by image."""
    # The keypoint categories (COCO's person is 1; an own dataset may use any ids).
    cats = {c.get("id") for c in gt.get("categories", []) if isinstance(c, Mapping) and c.get("keypoints")} or {1}
    gts: dict = {}
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", 1) not in cats:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        if (kp[:, 2] > 0).any():
            gts.setdefault(ann["image_id"], []).append((kp, float(ann["area"])))
    dets: dict = {}
    for r in results:
        if r.get("category_id", 1) in cats:
            dets.setdefault(r["image_id"], []).append(r)
    return gts, dets


def _match_image(gts: list, dets: list[dict], sigmas: np.ndarray,
                 match_oks: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Greedy matching on one image, highest-scored prediction first, each to the unmatched ground
    truth of highest OKS (at least ``match_oks``) -> [(joint terms (K,), labelled (K,))] per match."""
    gkp = np.stack([g[0] for g in gts])  # (G, K, 3)
    areas = np.array([g[1] for g in gts])
    labelled = gkp[:, :, 2] > 0
    dets = sorted(dets, key=lambda r: -float(r["score"]))
    dkp = np.stack([np.asarray(r["keypoints"], np.float64).reshape(-1, 3) for r in dets])  # (D, K, 3)
    sq_dist = ((dkp[:, None, :, :2] - gkp[None, :, :, :2]) ** 2).sum(-1)  # (D, G, K)
    terms = joint_similarity(sq_dist, areas[None, :, None], sigmas)
    oks = mean_similarity(terms, labelled[None])  # COCO's OKS: over the ground truth's labelled joints
    taken = np.zeros(len(gts), bool)
    matches = []
    for d in range(len(dets)):
        cand = np.where(taken, -1.0, oks[d])
        g = int(np.argmax(cand))
        if cand[g] >= match_oks:
            taken[g] = True
            matches.append((terms[d, g], labelled[g]))
    return matches


def keypoint_oks_accuracy(
    gt: str | os.PathLike | Mapping,
    results: str | os.PathLike | Sequence[Mapping],
    *,
    term_thresh: float = 0.5,
    match_oks: float = 0.1,
    keypoints: KeypointSet | None = None,
) -> KeypointAccuracy:
    """Per-keypoint OKS accuracy (see :class:`KeypointAccuracy` for the definition).

    Args:
        gt: COCO keypoint annotation file (path) or its loaded dict.
        results: COCO results file (path) or list of ``{image_id, category_id, keypoints [x,y,s]*K,
            score}`` in image px (the ``tools/test.py`` format).
        term_thresh: a joint is correct when its OKS term is at least this.
        match_oks: predictions are matched to ground truth per image, highest score first, each
            to the unmatched ground-truth person of highest OKS, when that OKS is at least this
            (low, so that a person whose joints are half right still counts its good joints).
        keypoints: the keypoint set (names, OKS sigmas); default: the one the ground truth's
            keypoint category declares (:func:`pose.keypoints.from_categories`).
    """
    gt_name = str(gt) if not isinstance(gt, Mapping) else "the ground truth"
    res_name = str(results) if isinstance(results, (str, os.PathLike)) else "the results"
    if not isinstance(gt, Mapping):
        gt = load_json(gt, "ground-truth annotation file")
    if isinstance(results, (str, os.PathLike)):
        results = load_json(results, "results file")
    if not isinstance(gt, Mapping) or "annotations" not in gt or "images" not in gt:
        raise ValueError(f"{gt_name}: not a COCO annotation file (needs 'images' and 'annotations')")
    if keypoints is None:
        try:
            keypoints, _ = from_categories(gt.get("categories"), gt_name)
        except KeypointSetError as exc:
            raise ValueError(f"{exc}; or pass the keypoint set (keypoints=...)") from None
    sigmas = keypoints.oks_sigmas
    k = len(sigmas)
    results = check_results(results, res_name, num_joints=k, known_image_ids={im["id"] for im in gt["images"]},
                            known_name=gt_name)
    gts_by_image, dets_by_image = _people_by_image(gt, results)
    correct, labelled = np.zeros(k, np.int64), np.zeros(k, np.int64)
    term_sum, term_count = np.zeros(k), np.zeros(k, np.int64)
    num_gt = num_matched = 0
    for image_id, gts in gts_by_image.items():
        num_gt += len(gts)
        labelled += np.stack([g[0][:, 2] > 0 for g in gts]).sum(axis=0)
        if not dets_by_image.get(image_id):
            continue
        for terms, vis in _match_image(gts, dets_by_image[image_id], sigmas, match_oks):
            num_matched += 1
            correct += vis & (terms >= term_thresh)
            term_sum += np.where(vis, terms, 0.0)
            term_count += vis
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(labelled > 0, correct / np.maximum(labelled, 1), np.nan)
        mean_term = np.where(term_count > 0, term_sum / np.maximum(term_count, 1), np.nan)
    return KeypointAccuracy(names=keypoints.names, accuracy=accuracy, correct=correct, labelled=labelled,
                            mean_term=mean_term, num_gt=num_gt, num_matched=num_matched,
                            term_thresh=term_thresh, match_oks=match_oks, sides=keypoints.sides)
