"""Keypoint sets: built-ins, derived flip pairs, categories, config sections, validation."""

import logging

import pytest
from pycocotools.cocoeval import Params

from pose.keypoints import (
    BUILTIN_SETS,
    COCO17,
    CROWDPOSE14,
    DEFAULT_SIGMA,
    MPII16,
    KeypointSet,
    KeypointSetError,
    builtin,
    derive_flip_pairs,
    derive_sides,
    from_categories,
    from_category,
    from_dict,
    resolve,
)

ANIMAL = ["nose", "eye_l", "eye_r", "l_front_paw", "r_front_paw", "tail", "Left-Hind.Paw", "right hind paw"]


def test_coco_is_the_official_set():
    assert COCO17.num_joints == 17 and COCO17.names[0] == "nose" and COCO17.names[16] == "right_ankle"
    # pycocotools' sigmas to the bit, and the official flip pairs / joint weights / upper body.
    assert COCO17.oks_sigmas.tobytes() == Params(iouType="keypoints").kpt_oks_sigmas.tobytes()
    assert COCO17.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert COCO17.flip_index == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert COCO17.upper_body == tuple(range(11)) and COCO17.lower_body == tuple(range(11, 17))
    assert COCO17.joint_weights[9:11] == (1.5, 1.5) and COCO17.joint_weights[7] == 1.2
    # The category round trip is COCO's own 'person' entry (1-based skeleton).
    cat = COCO17.coco_category(name="person")
    assert cat["skeleton"][0] == [16, 14] and cat["name"] == cat["supercategory"] == "person"
    assert from_category(cat, "f.json") == COCO17


@pytest.mark.parametrize("kset", list(BUILTIN_SETS.values()), ids=list(BUILTIN_SETS))
def test_builtins_are_consistent(kset):
    # Every flip pair joins a left and a right joint of the same stem; derived pairs agree.
    assert {frozenset(p) for p in derive_flip_pairs(kset.names)} == {frozenset(p) for p in kset.flip_pairs}
    for a, b in kset.flip_pairs:
        assert {kset.sides[a], kset.sides[b]} == {"left", "right"}
    assert from_dict(kset.to_dict()) == kset and builtin(kset.name) is kset
    assert len(kset.sigmas) == kset.num_joints and all(s > 0 for s in kset.sigmas)


def test_mpii_and_crowdpose_orders():
    assert MPII16.names[9] == "head_top" and MPII16.flip_pairs[0] == (0, 5) and MPII16.num_joints == 16
    assert CROWDPOSE14.names[12:] == ("head", "neck") and CROWDPOSE14.flip_index[0] == 1


def test_derived_flip_pairs_and_sides_for_every_form():
    pairs = derive_flip_pairs(ANIMAL)
    assert pairs == ((1, 2), (3, 4), (6, 7))
    assert derive_sides(ANIMAL) == ("centre", "left", "right", "left", "right", "centre", "left", "right")
    # A side without its partner stays unpaired; forms do not mix ('l_x' with 'x_r').
    assert derive_flip_pairs(["l_ear", "ear_r", "left_paw"]) == ()


def test_from_category_of_own_keypoints(caplog):
    cat = {"id": 3, "name": "animal", "keypoints": ANIMAL, "skeleton": [[1, 2], [1, 3], [6, 1]]}
    kset = from_category(cat, "zoo.json")
    assert kset.name == "animal" and kset.skeleton == ((0, 1), (0, 2), (5, 0))
    assert kset.sigmas == (DEFAULT_SIGMA,) * 8 and kset.upper_body == () and kset.flip_pairs == ((1, 2), (3, 4), (6, 7))
    with caplog.at_level(logging.WARNING, logger="pose.keypoints"):
        resolved = resolve({"name": "auto"}, kset, source="data.keypoints")
    assert resolved == kset
    assert caplog.text.count("OKS sigmas default to 0.067") == 1 and "data.keypoints.sigmas" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pose.keypoints"):
        given = resolve({"name": "auto", "sigmas": [0.05] * 8}, kset, source="data.keypoints")
    assert given.sigmas == (0.05,) * 8 and not caplog.text


def test_categories_must_agree():
    cat = {"id": 1, "name": "a", "keypoints": ANIMAL}
    kset, ids = from_categories([cat, {"id": 2, "name": "b", "keypoints": ANIMAL}, {"id": 5, "name": "car"}], "f")
    assert ids == (1, 2) and kset.names == tuple(ANIMAL)
    with pytest.raises(KeypointSetError, match=r"f: categories 1 and 2 have different 'keypoints' lists"):
        from_categories([cat, {"id": 2, "keypoints": ANIMAL[:3]}], "f")
    with pytest.raises(KeypointSetError, match="f: no category has a 'keypoints' list"):
        from_categories([{"id": 1, "name": "person"}], "f")


def test_resolve_config_sections():
    # Built-in by name; fields override; names that equal a built-in set take its values.
    assert resolve({"name": "coco"}, None, "s") == COCO17
    assert resolve({"name": "auto", "names": list(MPII16.names)}, None, "s") == MPII16
    heavy = resolve({"name": "coco", "joint_weights": [2.0] * 17}, COCO17, "s")
    assert heavy.joint_weights == (2.0,) * 17 and heavy.sigmas == COCO17.sigmas
    custom = resolve({"name": "hand", "names": ["wrist", "thumb", "index"], "upper_body": [0]}, None, "s")
    assert custom.name == "hand" and custom.upper_body == (0,) and custom.flip_pairs == ()
    # A resolved set written back as a section resolves to itself (config.yaml round trip).
    assert resolve(custom.to_dict(), None, "s") == custom
    with pytest.raises(KeypointSetError, match=r"s: data.keypoints names \['wrist'.* but zoo.json declares"):
        resolve({"name": "hand", "names": ["wrist", "thumb", "index"]}, from_dict({"names": ANIMAL}), "s",
                declared_from="zoo.json")
    with pytest.raises(KeypointSetError, match="'hand' is not a built-in set .*give data.keypoints.names"):
        resolve({"name": "hand"}, None, "s")


@pytest.mark.parametrize("tree, message", [
    ({"names": ["a", "b"], "flip_pairs": [[0, 5]]}, r"flip_pairs\[0\] = \(0, 5\) names a joint outside 0..1"),
    ({"names": ["a", "b", "c"], "flip_pairs": [[0, 1], [1, 2]]}, r"flip_pairs\[1\] uses joint 1 \('b'\) twice"),
    ({"names": ["a", "b"], "flip_pairs": [[1, 1]]}, r"flip_pairs\[0\] uses joint 1 \('b'\) twice"),
    ({"names": ["a", "b"], "sigmas": [0.1]}, "'sigmas' has 1 values for 2 joints"),
    ({"names": ["a", "b"], "sigmas": [0.1, 0.0]}, "'sigmas' must be positive finite numbers, got 0.0"),
    ({"names": ["a", "b"], "sigmas": [0.1, float("nan")]}, "'sigmas' must be positive finite numbers, got nan"),
    ({"names": ["a", "b"], "skeleton": [[0, 2]]}, r"skeleton\[0\] = \(0, 2\) is not a pair of two joints in 0..1"),
    ({"names": ["a", "a"]}, "joint name 'a' appears twice"),
    ({"names": ["a", "b"], "joint_weights": [1, -1]}, "'joint_weights' must be finite and >= 0"),
    ({"names": ["a", "b"], "upper_body": [0, 0]}, "'upper_body' must be distinct joint indices"),
    ({"names": ["a", "b"], "sides": ["left", "up"]}, "'sides' must give one of left, right, centre"),
    ({"names": ["a"], "colour": 1}, "unknown keypoint-set field 'colour'"),
    ({"names": "ab"}, "'names' must be a list"),
])
def test_invalid_sets_name_source_and_field(tree, message):
    with pytest.raises(KeypointSetError, match=r"my.yaml: .*" + message):
        from_dict(tree, source="my.yaml")


def test_category_skeleton_out_of_range_and_builtin_names_win():
    with pytest.raises(KeypointSetError, match=r"f.json: category 7: skeleton\[1\] = \[2, 9\] is out of range"):
        from_category({"id": 7, "keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [2, 9]]}, "f.json")
    # Real CrowdPose files carry COCO's 17-joint skeleton: the built-in set's own is used.
    real = {"id": 1, "keypoints": list(CROWDPOSE14.names), "skeleton": [[16, 14], [17, 15]]}
    assert from_category(real, "crowdpose.json") == CROWDPOSE14


def test_keypoint_set_is_frozen_and_hashable():
    kset = KeypointSet(name="x", names=("a", "b"))
    with pytest.raises(AttributeError):
        kset.names = ("c",)
    assert hash(kset) == hash(KeypointSet(name="x", names=("a", "b")))
    assert kset.limb_side(0, 1) == "centre" and COCO17.limb_side(5, 7) == "left"
