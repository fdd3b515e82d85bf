"""Evaluation post-processing at COCO val2017 scale: vectorised vs per-joint / per-instance loops.

val2017 with detector boxes is about 100,000 person crops over 5,000 images. This benchmark makes
synthetic predictions of that size and times, in the same run and on the same data:

- decoding (Gaussian codec: argmax, the official quarter-pixel step, heatmap -> image px) of
  heatmaps (N, 17, 64, 48) fed in batches of ``--chunk`` as the evaluator gets them from the
  network (all N heatmaps at once would be 21 GB): ``codec.decode`` + ``codec.to_image`` vs
  ``eval_reference.decode_gaussian_loops``;
- rescoring of all N: ``evaluator.rescore`` vs ``eval_reference.rescore_loops``;
- OKS NMS per image on all N: ``nms.nms_per_image`` vs ``eval_reference.nms_per_image_loops``
  (the official loop: one OKS call per kept instance, one candidate at a time);

and asserts identical keypoints, joint scores, instance scores and kept sets.

Both decoders must find each map's maximum, one pass over all the maps that neither can skip.
That argmax (numpy's, over the same batches) is timed on its own too, and reported as the ratio
decode / bare argmax, with the pipeline's speed-up when that shared pass is left out of both sides.

Detections: each image holds a few people; each detection is a jittered copy of one of them (so
that OKS NMS has duplicates to drop) with a box score rounded to 0.01 (ties occur, as with real
detectors); the number of detections per image is skewed (many images with a few, some with 100+).

  python benchmarks/bench_eval.py                      # full size, both implementations
  python benchmarks/bench_eval.py --naive-fraction 0.1 # loops on a 10% subset, extrapolated
"""

import argparse
import time

import eval_reference as ref
import numpy as np
from machine import describe

from pose.data.codecs import build_codec
from pose.engine.evaluator import rescore
from pose.engine.nms import nms_per_image
from pose.keypoints import COCO17

K, HM_W, HM_H = 17, 48, 64


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=100_000)
    p.add_argument("--images", type=int, default=5_000)
    p.add_argument("--chunk", type=int, default=32,
                   help="heatmaps decoded per call: the evaluator decodes each test batch as the network "
                        "(and the flip average) writes it; 32 is test.batch_size of the COCO configs")
    p.add_argument("--pool", type=int, default=512, help="distinct heatmaps reused by the people")
    p.add_argument("--naive-fraction", type=float, default=1.0,
                   help="run the loops on this fraction of the chunks / images and extrapolate "
                        "(default: all)")
    p.add_argument("--soft", action="store_true", help="also time soft OKS NMS")
    p.add_argument("--seed", type=int, default=0)
    return p


def heatmap_pool(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, K, 64, 48) float32: one Gaussian (sigma 2) per joint, amplitude 0.05-1, noise; 3% empty maps."""
    xs, ys = np.arange(HM_W), np.arange(HM_H)
    cx = rng.uniform(-1, HM_W, (size, K, 1))
    cy = rng.uniform(-1, HM_H, (size, K, 1))
    amp = rng.uniform(0.05, 1.0, (size, K, 1, 1))
    gx = np.exp(-(xs - cx) ** 2 / 8.0)
    gy = np.exp(-(ys - cy) ** 2 / 8.0)
    maps = (amp * gy[..., :, None] * gx[..., None, :]).astype(np.float32)
    maps += rng.normal(0, 0.01, maps.shape).astype(np.float32)
    empty = rng.uniform(size=(size, K)) < 0.03
    maps[empty] = -np.abs(maps[empty]) - 0.01  # maximum <= 0: the official code zeroes the coordinates
    return maps


def make_detections(rng: np.random.Generator, n: int, images: int, pool: int) -> dict[str, np.ndarray]:
    """Detections with image ids, the pool heatmap of their person, crop centre/scale, box score, area."""
    people_per_image = 1 + rng.poisson(2.0, images)
    first_person = np.concatenate([[0], np.cumsum(people_per_image)[:-1]])
    weights = rng.gamma(0.5, 1.0, images)
    image = rng.choice(images, size=n, p=weights / weights.sum())
    person = first_person[image] + rng.integers(0, people_per_image[image])
    num_people = int(people_per_image.sum())
    p_center = rng.uniform(50, 600, (num_people, 2))
    p_scale = np.repeat(rng.uniform(0.3, 2.5, (num_people, 1)), 2, axis=1) * [1.0, 4 / 3]
    jitter = rng.uniform(0, 0.06, (n, 1))
    center = p_center[person] + rng.normal(0, 1, (n, 2)) * jitter * p_scale[person] * 200
    scale = p_scale[person] * (1 + rng.normal(0, 1, (n, 1)) * jitter)
    return {"image_id": image.astype(np.int64) * 7 + 1, "heatmap": person % pool,
            "center": center.astype(np.float32), "scale": scale.astype(np.float32),
            "box_score": np.round(rng.uniform(0.05, 1.0, n), 2),
            "area": (scale[:, 0] * scale[:, 1] * 200.0 ** 2).astype(np.float64)}


def main(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    n, chunk = args.instances, args.chunk
    print(describe())
    print(f"settings: {n} instances over {args.images} images, heatmaps ({chunk}, {K}, {HM_H}, {HM_W}) "
          f"float32 per decode call, pool of {args.pool} distinct heatmaps, gaussian codec 192x256, refine default, "
          f"OKS NMS thresh 0.9, kpt score thresh 0.2, loops on {args.naive_fraction:.0%}")
    t = time.perf_counter()
    pool = heatmap_pool(rng, args.pool)
    det = make_detections(rng, n, args.images, args.pool)
    counts = np.unique(det["image_id"], return_counts=True)[1]
    print(f"data: made in {time.perf_counter() - t:.1f} s; {counts.size} images with detections, per image: "
          f"median {np.median(counts):.0f}, mean {counts.mean():.1f}, max {counts.max()}")
    codec = build_codec("gaussian", input_size=(192, 256), heatmap_size=(HM_W, HM_H), sigma=2.0,
                        flip_index=COCO17.flip_index)

    # --- decoding, chunk by chunk -------------------------------------------------------------------
    starts = list(range(0, n, chunk))
    naive_every = max(1, round(1 / args.naive_fraction)) if args.naive_fraction < 1 else 1
    coords = np.zeros((n, K, 2), np.float32)
    maxvals = np.zeros((n, K), np.float32)
    t_ours = t_naive = t_argmax = 0.0
    naive_instances = 0
    for c, s in enumerate(starts):
        sl = slice(s, min(s + chunk, n))
        heatmaps = pool[det["heatmap"][sl]]  # the network's output for this batch (not timed)
        t = time.perf_counter()
        hm_coords, vals = codec.decode(heatmaps)
        coords[sl] = codec.to_image(hm_coords, det["center"][sl], det["scale"][sl])
        maxvals[sl] = vals
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        heatmaps.reshape(-1, HM_H * HM_W).argmax(axis=1)  # the pass every decoder makes
        t_argmax += time.perf_counter() - t
        if c % naive_every == 0:
            t = time.perf_counter()
            loop_coords, loop_vals = ref.decode_gaussian_loops(heatmaps, det["center"][sl], det["scale"][sl])
            t_naive += time.perf_counter() - t
            naive_instances += sl.stop - sl.start
            assert np.array_equal(loop_coords, coords[sl]), "decoded keypoints differ"
            assert np.array_equal(loop_vals, maxvals[sl]), "joint scores differ"
    rows = [("decode + to_image", n, t_ours, naive_instances, t_naive)]

    # --- rescoring -----------------------------------------------------------------------------------
    m = n if args.naive_fraction >= 1 else int(n * args.naive_fraction)
    t = time.perf_counter()
    scores = rescore(maxvals, det["box_score"], 0.2)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    loop_scores = ref.rescore_loops(maxvals[:m], det["box_score"][:m], 0.2)
    t_naive = time.perf_counter() - t
    assert np.array_equal(loop_scores, scores[:m]), "instance scores differ"
    rows.append(("rescoring", n, t_ours, m, t_naive))

    # --- OKS NMS per image ---------------------------------------------------------------------------
    keypoints = np.concatenate([coords, maxvals[..., None]], axis=2)
    variants = [False, True] if args.soft else [False]
    for soft in variants:
        t = time.perf_counter()
        keep = nms_per_image(keypoints, scores, det["area"], det["image_id"], thresh=0.9, soft=soft,
                             sigmas=COCO17.oks_sigmas)
        t_ours = time.perf_counter() - t
        if args.naive_fraction >= 1:
            subset = np.arange(n)
        else:  # whole images, so that the kept sets are comparable
            chosen = np.unique(det["image_id"])[::naive_every]
            subset = np.flatnonzero(np.isin(det["image_id"], chosen))
        t = time.perf_counter()
        loop_keep = ref.nms_per_image_loops(keypoints[subset], scores[subset], det["area"][subset],
                                            det["image_id"][subset], thresh=0.9, soft=soft)
        t_naive = time.perf_counter() - t
        ours_subset = keep[np.isin(keep, subset)]
        assert ours_subset.tolist() == subset[loop_keep].tolist(), "kept sets differ"
        name = "soft OKS NMS" if soft else "OKS NMS"
        rows.append((f"{name} (kept {len(keep)})", n, t_ours, len(subset), t_naive))

    print(f"\n{'step':<28} {'ours (s)':>9} {'loops (s)':>10} {'loops on':>9} {'loops, all (s)':>15} "
          f"{'speedup':>8}")
    total_ours = total_naive = 0.0
    for name, count, ours, naive_count, naive in rows:
        full = naive * count / naive_count
        if not name.startswith("soft"):  # the default pipeline: decode, rescoring, OKS NMS
            total_ours += ours
            total_naive += full
        extrap = "" if naive_count == count else " (extrapolated)"
        print(f"{name:<28} {ours:9.3f} {naive:10.3f} {naive_count:9d} {full:15.3f} "
              f"{full / ours:7.1f}x{extrap}")
    print(f"{'total (decode+rescore+NMS)':<28} {total_ours:9.3f} {'':>10} {'':>9} {total_naive:15.3f} "
          f"{total_naive / total_ours:7.1f}x")
    decode_ours = rows[0][2]
    print(f"{'bare argmax (same maps)':<28} {t_argmax:9.3f}")
    print(f"decode / bare argmax: {decode_ours / t_argmax:.2f}x (the decode is the argmax plus "
          f"{decode_ours - t_argmax:.3f} s of everything else)")
    print(f"total without the shared argmax: {total_naive - t_argmax:.3f} s loops vs {total_ours - t_argmax:.3f} s "
          f"ours: {(total_naive - t_argmax) / (total_ours - t_argmax):.1f}x")
    print("identical: decoded keypoints, joint scores, instance scores, kept sets (asserted)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
