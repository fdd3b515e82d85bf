"""Keypoint sets: what a dataset's joints are, as data.

A :class:`KeypointSet` holds everything the data, evaluation and drawing code need to know about
the joints: names, skeleton, flip pairs, OKS sigmas, the upper-body joints (half-body
augmentation), per-joint loss weights and the side of each joint (drawing colours). Nothing else
in the package should assume a number of joints or their names; it takes a set.

Built-in sets (:data:`BUILTIN_SETS`): ``coco`` (17 joints, the official values), ``mpii`` (16, the
official HRNet/SimpleBaseline loader's order) and ``crowdpose`` (14). A COCO-format dataset of
other keypoints declares them in its category (``keypoints`` names, 1-based ``skeleton``);
:func:`from_category` turns that into a set: names equal to a built-in set's take its values,
otherwise flip pairs and sides are derived from left/right names and the sigmas take
:data:`DEFAULT_SIGMA`.
"""

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

logger = logging.getLogger("pose.keypoints")

SIDES = ("left", "right", "centre")

# OKS sigma for joints of a set without established sigmas: the mean of COCO's 17 sigmas. A
# guess: AP computed with it ranks models on that set but is not comparable with other sets.
DEFAULT_SIGMA = 0.067


class KeypointSetError(ValueError):
    """A keypoint set (from a config, an annotation file or a checkpoint) is invalid; the message
    names the source and the field."""


@dataclass(frozen=True)
class KeypointSet:
    """Joints of a dataset. Indices are 0-based joint indices into ``names``.

    Attributes:
        name: a short label ('coco', 'mpii', 'crowdpose', or the dataset's category name).
        names: joint names, in the order of the annotation arrays and heatmap channels.
        skeleton: limbs as joint index pairs (0-based; COCO files store them 1-based).
        flip_pairs: joints swapped by a horizontal flip (each joint in at most one pair).
        sigmas: per-joint OKS sigmas, in pycocotools' units (COCO's nose is 0.026).
        upper_body: joints of the upper body for half-body augmentation (empty: the augmentation
            is not used for this set).
        joint_weights: per-joint loss weights (the official COCO values for ``coco``).
        sides: 'left', 'right' or 'centre' per joint (drawing colours).
    """

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()
    upper_body: tuple[int, ...] = ()
    joint_weights: tuple[float, ...] = ()
    sides: tuple[str, ...] = ()
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        k = len(self.names)
        # Empty optional fields take their defaults; then everything is validated.
        if not self.sigmas:
            object.__setattr__(self, "sigmas", (DEFAULT_SIGMA,) * k)
        if not self.joint_weights:
            object.__setattr__(self, "joint_weights", (1.0,) * k)
        if not self.sides:
            object.__setattr__(self, "sides", derive_sides(self.names))
        _validate(self)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """``flip_index[k]`` is the joint that k becomes after a horizontal flip."""
        swap = {**dict(self.flip_pairs), **{b: a for a, b in self.flip_pairs}}
        return tuple(swap.get(k, k) for k in range(self.num_joints))

    @property
    def lower_body(self) -> tuple[int, ...]:
        upper = set(self.upper_body)
        return tuple(k for k in range(self.num_joints) if k not in upper) if upper else ()

    @property
    def oks_sigmas(self) -> np.ndarray:
        """Sigmas as a float64 array (pycocotools' ``params.kpt_oks_sigmas``)."""
        return np.asarray(self.sigmas, dtype=np.float64)

    def joint_side(self, k: int) -> str:
        return self.sides[k]

    def limb_side(self, a: int, b: int) -> str:
        """The side of a limb: its joints' side when they agree, else 'centre'."""
        return self.sides[a] if self.sides[a] == self.sides[b] else "centre"

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (for config.yaml, checkpoints and JSON)."""
        return {"name": self.name, "names": list(self.names),
                "skeleton": [list(p) for p in self.skeleton],
                "flip_pairs": [list(p) for p in self.flip_pairs],
                "sigmas": list(self.sigmas), "upper_body": list(self.upper_body),
                "joint_weights": list(self.joint_weights), "sides": list(self.sides)}

    def coco_category(self, category_id: int = 1, name: str | None = None, supercategory: str | None = None) -> dict:
        """The COCO category entry of this set (names and 1-based skeleton); ``name`` and
        ``supercategory`` default to the set's name (COCO's own: 'person')."""
        return {"supercategory": supercategory or name or self.name, "id": category_id, "name": name or self.name,
                "keypoints": list(self.names), "skeleton": [[a + 1, b + 1] for a, b in self.skeleton]}


def from_dict(tree: Mapping[str, Any], source: str = "keypoint set") -> KeypointSet:
    """Rebuild a set from :meth:`KeypointSet.to_dict` output (or a config section), validating it."""
    if not isinstance(tree, Mapping):
        raise KeypointSetError(f"{source}: a keypoint set must be a mapping, got {type(tree).__name__}")
    known = {"name", "names", "skeleton", "flip_pairs", "sigmas", "upper_body", "joint_weights", "sides"}
    unknown = sorted(set(tree) - known)
    if unknown:
        raise KeypointSetError(f"{source}: unknown keypoint-set field {unknown[0]!r} "
                               f"(valid: {', '.join(sorted(known))})")
    if "names" not in tree:
        raise KeypointSetError(f"{source}: keypoint set has no 'names'")
    try:
        return KeypointSet(
            name=str(tree.get("name", "keypoints")),
            names=_str_tuple(tree["names"], source, "names"),
            skeleton=_pair_tuple(tree.get("skeleton", ()), source, "skeleton"),
            flip_pairs=_pair_tuple(tree.get("flip_pairs", ()), source, "flip_pairs"),
            sigmas=_float_tuple(tree.get("sigmas", ()), source, "sigmas"),
            upper_body=_int_tuple(tree.get("upper_body", ()), source, "upper_body"),
            joint_weights=_float_tuple(tree.get("joint_weights", ()), source, "joint_weights"),
            sides=_str_tuple(tree.get("sides", ()), source, "sides"),
            source=source)
    except KeypointSetError as exc:
        raise KeypointSetError(str(exc) if str(exc).startswith(source) else f"{source}: {exc}") from None


def builtin(name: str) -> KeypointSet:
    """A built-in set by name ('coco', 'mpii', 'crowdpose')."""
    try:
        return BUILTIN_SETS[name]
    except KeyError:
        raise KeypointSetError(f"unknown keypoint set {name!r} (built-in: {', '.join(BUILTIN_SETS)})") from None


def builtin_for_names(names: Sequence[str]) -> KeypointSet | None:
    """The built-in set whose joint names equal ``names`` (same order), or None."""
    for kset in BUILTIN_SETS.values():
        if tuple(names) == kset.names:
            return kset
    return None


def from_category(category: Mapping[str, Any], source: str) -> KeypointSet:
    """The set a COCO category declares (``keypoints`` names, 1-based ``skeleton``).

    Names equal to a built-in set's give that set (its official sigmas, flip pairs, weights and
    skeleton: real CrowdPose files, for one, carry COCO's 17-joint skeleton). Otherwise flip pairs
    and sides come from left/right names (:func:`derive_flip_pairs`), the skeleton from the
    category, the sigmas are :data:`DEFAULT_SIGMA` and there is no upper body (no half-body
    augmentation). :func:`resolve` warns once when the default sigmas are used.
    """
    where = f"{source}: category {category.get('id', '?')!r}"
    names = category.get("keypoints")
    if not isinstance(names, list) or not names:
        raise KeypointSetError(f"{where}: 'keypoints' must be a non-empty list of joint names")
    names = _str_tuple(names, where, "keypoints")
    known = builtin_for_names(names)
    if known is not None:
        return replace(known, source=source)
    raw_skeleton = category.get("skeleton", [])
    skeleton = _pair_tuple(raw_skeleton, where, "skeleton")
    for i, (a, b) in enumerate(skeleton):
        if not (1 <= a <= len(names) and 1 <= b <= len(names)):
            raise KeypointSetError(f"{where}: skeleton[{i}] = [{a}, {b}] is out of range: COCO skeletons "
                                   f"are 1-based joint indices in 1..{len(names)}")
    return KeypointSet(name=str(category.get("name", "keypoints")), names=names,
                       skeleton=tuple((a - 1, b - 1) for a, b in skeleton),
                       flip_pairs=derive_flip_pairs(names), source=f"{where}")


def from_categories(categories: Any, source: str) -> tuple[KeypointSet, tuple[int, ...]]:
    """The set of a COCO file's keypoint categories (those with a ``keypoints`` list) and their ids.

    Several keypoint categories must declare the same joint names (one network predicts one set);
    their annotations are then all used. Raises :class:`KeypointSetError` naming the file and the
    categories when there is none, or when two lists differ.
    """
    if not isinstance(categories, list):
        raise KeypointSetError(f"{source}: 'categories' must be a list of COCO categories")
    found = [c for c in categories if isinstance(c, Mapping) and "keypoints" in c]
    if not found:
        raise KeypointSetError(f"{source}: no category has a 'keypoints' list of joint names (a COCO "
                               "keypoint file declares its joints in its category)")
    for c in found:
        if isinstance(c.get("id"), bool) or not isinstance(c.get("id"), int):
            raise KeypointSetError(f"{source}: category {c.get('name', '?')!r} needs an integer 'id'")
    first = found[0]
    for other in found[1:]:
        if other["keypoints"] != first["keypoints"]:
            raise KeypointSetError(
                f"{source}: categories {first['id']} and {other['id']} have different 'keypoints' lists "
                f"({len(first['keypoints'])} vs "
                f"{len(other['keypoints']) if isinstance(other['keypoints'], list) else '?'}"
                " names); one network predicts one keypoint set: keep one category, or split the file")
    return from_category(first, source), tuple(int(c["id"]) for c in found)


# Fields of a config section (``data.keypoints``) beside 'name'.
SET_FIELDS = ("names", "skeleton", "flip_pairs", "sigmas", "upper_body", "joint_weights", "sides")


def resolve(section: Mapping[str, Any], declared: KeypointSet | None, source: str,
            declared_from: str = "the annotation file", warn_default_sigmas: bool = True) -> KeypointSet:
    """The set a config section (``data.keypoints``: ``name`` + optional fields) asks for.

    ``name``: 'auto' starts from ``declared`` (the set the data declares); a built-in name starts
    from that set; any other name is a label for a set given by ``names`` (and the other fields).
    Non-empty fields replace the starting set's; new ``names`` start from what those names imply
    (a built-in set when they equal one, else flip pairs and sides from left/right names). When
    ``declared`` is given, the result's names must equal it. With ``warn_default_sigmas``, warns
    when the sigmas are the default guess (:data:`DEFAULT_SIGMA`) and the section gives none (a set
    read back from a checkpoint was warned about when it was made). Errors name ``source`` and the
    field.
    """
    name = section.get("name", "auto")
    given = {k: section[k] for k in SET_FIELDS if section.get(k)}
    if name == "auto":
        base = declared
    elif name in BUILTIN_SETS:
        base = BUILTIN_SETS[name]
    else:
        base = None
    if "names" in given:
        names = _str_tuple(given["names"], source, "names")
        if base is None or base.names != names:
            base = builtin_for_names(names) or KeypointSet(name=name, names=names,
                                                           flip_pairs=derive_flip_pairs(names), source=source)
    if base is None:
        why = ("the data declares no set here" if name == "auto" else
               f"{name!r} is not a built-in set ({', '.join(BUILTIN_SETS)})")
        raise KeypointSetError(f"{source}: data.keypoints.name={name!r} but {why}: give data.keypoints.names "
                               "(and optionally skeleton, flip_pairs, sigmas, upper_body, joint_weights, sides)")
    label = base.name if name == "auto" else name
    tree = {**base.to_dict(), **given, "name": label}
    kset = from_dict(tree, source=source)
    if declared is not None and kset.names != declared.names:
        raise KeypointSetError(f"{source}: data.keypoints names {list(kset.names)} but {declared_from} "
                               f"declares {list(declared.names)} ({declared.source or declared.name})")
    if warn_default_sigmas and "sigmas" not in given and builtin_for_names(kset.names) is None \
            and all(s == DEFAULT_SIGMA for s in kset.sigmas):
        logger.warning("%s: keypoints %s are not a built-in set; their OKS sigmas default to %.3f each (AP "
                       "is then only comparable within this dataset). Give the real ones with "
                       "data.keypoints.sigmas=[...] (one per joint).", source, list(kset.names), DEFAULT_SIGMA)
    return kset


# Left/right name forms recognised by derive_flip_pairs, each as (pattern, side, form): left_x /
# right_x, l_x / r_x, x_left / x_right, x_l / x_r (any case; '_', '-', '.' or ' ' as separator).
# A name takes the first form it matches; pairs need the same form and the same stem.
_SEP = r"[_\-. ]"
_SIDE_FORMS = (
    (rf"^left{_SEP}?(?P<stem>.+)$", "left", "prefix"), (rf"^right{_SEP}?(?P<stem>.+)$", "right", "prefix"),
    (rf"^l{_SEP}(?P<stem>.+)$", "left", "short-prefix"), (rf"^r{_SEP}(?P<stem>.+)$", "right", "short-prefix"),
    (rf"^(?P<stem>.+?){_SEP}?left$", "left", "suffix"), (rf"^(?P<stem>.+?){_SEP}?right$", "right", "suffix"),
    (rf"^(?P<stem>.+?){_SEP}l$", "left", "short-suffix"), (rf"^(?P<stem>.+?){_SEP}r$", "right", "short-suffix"),
)


def _side_and_stem(name: str) -> tuple[str, str] | None:
    """('left' | 'right', form and normalised stem) when the name carries a side, else None."""
    for pattern, side, form in _SIDE_FORMS:
        m = re.match(pattern, name.lower())
        if m:
            return side, form + ":" + re.sub(_SEP, "_", m.group("stem"))
    return None


def derive_sides(names: Sequence[str]) -> tuple[str, ...]:
    """'left' / 'right' for names in a left/right form (see :func:`derive_flip_pairs`), else 'centre'."""
    return tuple((_side_and_stem(n) or ("centre", ""))[0] for n in names)


def derive_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Flip pairs from left/right names: ``left_x``/``right_x``, ``l_x``/``r_x``, ``x_l``/``x_r`` and
    ``x_left``/``x_right`` pair when their stems match; a side without its partner stays unpaired."""
    lefts: dict[str, int] = {}
    rights: dict[str, int] = {}
    for k, name in enumerate(names):
        found = _side_and_stem(name)
        if found:
            (lefts if found[0] == "left" else rights).setdefault(found[1], k)
    return tuple(sorted((lefts[s], rights[s]) for s in lefts.keys() & rights.keys()))


def _validate(kset: KeypointSet) -> None:
    where = kset.source or f"keypoint set {kset.name!r}"
    k = len(kset.names)
    if k == 0:
        raise KeypointSetError(f"{where}: 'names' is empty")
    if len(set(kset.names)) != k:
        dup = next(n for n in kset.names if kset.names.count(n) > 1)
        raise KeypointSetError(f"{where}: joint name {dup!r} appears twice in 'names'")
    for i, (a, b) in enumerate(kset.skeleton):
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise KeypointSetError(f"{where}: skeleton[{i}] = ({a}, {b}) is not a pair of two joints in 0..{k - 1}")
    seen: set[int] = set()
    for i, (a, b) in enumerate(kset.flip_pairs):
        if not (0 <= a < k and 0 <= b < k):
            raise KeypointSetError(f"{where}: flip_pairs[{i}] = ({a}, {b}) names a joint outside 0..{k - 1}")
        for j in (a, b):
            if j in seen or a == b:
                raise KeypointSetError(f"{where}: flip_pairs[{i}] uses joint {j} ({kset.names[j]!r}) twice")
            seen.add(j)
    if len(kset.sigmas) != k:
        raise KeypointSetError(f"{where}: 'sigmas' has {len(kset.sigmas)} values for {k} joints")
    bad = [s for s in kset.sigmas if not (math.isfinite(s) and s > 0)]
    if bad:
        raise KeypointSetError(f"{where}: 'sigmas' must be positive finite numbers, got {bad[0]!r}")
    if len(kset.joint_weights) != k:
        raise KeypointSetError(f"{where}: 'joint_weights' has {len(kset.joint_weights)} values for {k} joints")
    bad = [w for w in kset.joint_weights if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise KeypointSetError(f"{where}: 'joint_weights' must be finite and >= 0, got {bad[0]!r}")
    if len(set(kset.upper_body)) != len(kset.upper_body) or any(not 0 <= j < k for j in kset.upper_body):
        raise KeypointSetError(f"{where}: 'upper_body' must be distinct joint indices in 0..{k - 1}, "
                               f"got {list(kset.upper_body)}")
    if len(kset.sides) != k or any(s not in SIDES for s in kset.sides):
        raise KeypointSetError(f"{where}: 'sides' must give one of {', '.join(SIDES)} for each of {k} joints")


def _seq(value: Any, source: str, field_name: str) -> Sequence:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise KeypointSetError(f"{source}: {field_name!r} must be a list, got {value!r}")
    return value


def _str_tuple(value: Any, source: str, field_name: str) -> tuple[str, ...]:
    items = _seq(value, source, field_name)
    for i, v in enumerate(items):
        if not isinstance(v, str) or not v:
            raise KeypointSetError(f"{source}: {field_name}[{i}] must be a non-empty string, got {v!r}")
    return tuple(items)


def _int_tuple(value: Any, source: str, field_name: str) -> tuple[int, ...]:
    items = _seq(value, source, field_name)
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise KeypointSetError(f"{source}: {field_name}[{i}] must be an integer, got {v!r}")
    return tuple(int(v) for v in items)


def _float_tuple(value: Any, source: str, field_name: str) -> tuple[float, ...]:
    items = _seq(value, source, field_name)
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise KeypointSetError(f"{source}: {field_name}[{i}] must be a number, got {v!r}")
    return tuple(float(v) for v in items)


def _pair_tuple(value: Any, source: str, field_name: str) -> tuple[tuple[int, int], ...]:
    items = _seq(value, source, field_name)
    out = []
    for i, pair in enumerate(items):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise KeypointSetError(f"{source}: {field_name}[{i}] must be a pair of joint indices, got {pair!r}")
        out.append(_int_tuple(pair, source, f"{field_name}[{i}]"))
    return tuple((a, b) for a, b in out)


COCO17 = KeypointSet(
    name="coco",
    names=("nose", "left_eye", "right_eye", "left_ear", "right_ear",
           "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
           "left_wrist", "right_wrist", "left_hip", "right_hip",
           "left_knee", "right_knee", "left_ankle", "right_ankle"),
    # COCO's 'skeleton' (1-based in the annotation files).
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
              (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # pycocotools' (and the official NMS's) keypoint sigmas, computed as they compute them: the same
    # float64 bits, so OKS and AP are bit-identical to theirs.
    sigmas=tuple((np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                            1.07, 1.07, .87, .87, .89, .89]) / 10.0).tolist()),
    upper_body=tuple(range(11)),
    # The official USE_DIFFERENT_JOINTS_WEIGHT values.
    joint_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
)

MPII16 = KeypointSet(
    name="mpii",
    # The official HRNet/SimpleBaseline MPII order.
    names=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
           "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
           "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"),
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
              (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15)),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    # mmpose's MPII sigmas (adapted from COCO's); MPII itself is evaluated with PCKh.
    sigmas=(.089, .083, .107, .107, .083, .089, .026, .026, .026, .026, .062, .072, .179, .179, .072, .062),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
)

CROWDPOSE14 = KeypointSet(
    name="crowdpose",
    names=("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"),
    skeleton=((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 7), (13, 6),
              (7, 9), (9, 11), (6, 8), (8, 10)),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    # crowdposetools' sigmas, computed as it computes them.
    sigmas=tuple((np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0).tolist()),
    upper_body=(0, 1, 2, 3, 4, 5, 12, 13),
)

BUILTIN_SETS: dict[str, KeypointSet] = {s.name: s for s in (COCO17, MPII16, CROWDPOSE14)}
