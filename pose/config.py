"""Typed configuration: dataclass defaults, YAML files, dotted command-line overrides.

A config is built in three layers and then frozen:

1. the defaults below (one dataclass per section, a comment on each field);
2. a YAML file, which may name a ``base`` YAML (relative to itself) to start from (an empty
   file, or one of comments only, changes nothing);
3. command-line overrides of the form ``section.key=value`` (lower case, dotted), whose
   value is parsed as YAML (``train.lr=5e-4``, ``data.input_size=[288,384]``).

Unknown keys, wrong types and invalid choices raise :class:`ConfigError` naming the dotted
key and the file (or override) it came from.
"""

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pose.atomic_io import atomic_write_bytes
from pose.keypoints import BUILTIN_SETS, COCO17, KeypointSet, KeypointSetError, resolve

# Dataset formats whose joints are fixed (data.dataset -> built-in keypoint set); COCO-format data
# declare theirs in the annotation file's category.
DATASET_SETS = {"mpii": "mpii", "crowdpose": "crowdpose"}


class ConfigError(ValueError):
    """A config file, key or value is invalid; the message names it."""


@dataclass(frozen=True)
class ModelConfig:
    # Network name: resnet18/34/50/101/152, hrnet_w32, hrnet_w48, or a tiny test variant
    # (see pose.models.list_archs()).
    arch: str = "hrnet_w32"
    # Heatmap channels: 0 takes the keypoint set's joint count (data.keypoints); any other value
    # must equal it.
    num_joints: int = 0
    # Polarized Self-Attention: none, parallel (PSA_p) or sequential (PSA_s).
    psa: str = "none"
    # 'paper' follows the formulas of arXiv 2107.00782; 'official' reproduces the published
    # DeLightCMU/PSA module exactly (its parameter names too).
    psa_variant: str = "paper"
    # 'all': after the first 3x3 conv of every BasicBlock and Bottleneck (the paper);
    # 'basic': BasicBlocks only (the official segmentation code).
    psa_placement: str = "all"
    # Std of the normal init of convolutions (official: 0.001); 0 keeps PyTorch's default init.
    init_std: float = 0.001
    # ImageNet backbone weights loaded before training ('' for none), e.g.
    # models/pytorch/imagenet/resnet50-19c8e357.pth or hrnet_w32-36af842e.pth.
    pretrained: str = ""
    # Fine-tuning start point: a checkpoint of this toolkit (or a state dict) trained on any keypoint
    # set. Every tensor that fits is loaded; the final layer is skipped when the joint count differs
    # (the load report names what was skipped). Without it, weights for another joint count are an error.
    finetune_from: str = ""


@dataclass(frozen=True)
class KeypointsConfig:
    # 'auto': the set the training annotation file declares in its category (its 'keypoints' names
    # and 'skeleton'; names equal to a built-in set take its values). 'coco', 'mpii', 'crowdpose':
    # that built-in set. Any other name labels a set given by 'names' below. The fields below,
    # when not empty, replace the set's; the resolved set is written back here in the run's
    # config.yaml and checkpoints.
    name: str = "auto"
    names: tuple[str, ...] = ()
    # Limbs as 0-based joint index pairs (COCO files store them 1-based).
    skeleton: tuple[tuple[int, int], ...] = ()
    # Joints swapped by a horizontal flip, 0-based pairs (default: from left_/right_, l_/r_,
    # _l/_r and _left/_right names).
    flip_pairs: tuple[tuple[int, int], ...] = ()
    # OKS sigmas, one per joint (default for a set that is not built in: 0.067 each, with a warning).
    sigmas: tuple[float, ...] = ()
    # Joints of the upper body for half-body augmentation (empty: no half-body augmentation).
    upper_body: tuple[int, ...] = ()
    # Per-joint loss weights of the set, used when train.set_joint_weights is true.
    joint_weights: tuple[float, ...] = ()
    # 'left', 'right' or 'centre' per joint (drawing colours; default: from the names).
    sides: tuple[str, ...] = ()


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    flip_prob: float = 0.5
    # Scale: s *= clip(randn*sf + 1, 1-sf, 1+sf).
    scale_factor: float = 0.35
    # Rotation in degrees: clip(randn*rf, -2rf, 2rf) with probability rot_prob, else 0.
    rot_factor: float = 45.0
    rot_prob: float = 0.6
    # Half-body crop, tried when more than half_body_min_joints joints are labelled.
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8


@dataclass(frozen=True)
class SyntheticConfig:
    # When true, the dataset under data.root is generated (deterministically from the seed)
    # if it is not already there.
    enabled: bool = False
    seed: int = 0
    num_train_images: int = 120
    num_val_images: int = 40
    image_width: int = 320
    image_height: int = 240
    max_people: int = 3
    # 'person' (COCO's 17 joints) or 'animal' (a quadruped with its own 20 keypoint names).
    figure: str = "person"


@dataclass(frozen=True)
class DataConfig:
    # 'coco' (any COCO-format keypoints), 'crowdpose' (COCO format, CrowdPose protocol) or 'mpii'
    # (the official MPII JSON: annot/{set}.json, images/, PCKh with annot/gt_{set}.mat).
    dataset: str = "coco"
    # Dataset root in the COCO layout: annotations/person_keypoints_{set}.json,
    # images/{set}/*.jpg, person_detection_results/*.json.
    root: str = "data/coco"
    train_set: str = "train2017"
    val_set: str = "val2017"
    # Detection results for evaluation (relative to root unless absolute); used when
    # test.use_gt_bbox is false.
    det_file: str = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    # Network input (width, height) and heatmap (width, height), stride 4.
    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    # Heatmap encoding: 'gaussian' (MSRA, the official baselines), 'dark' (unbiased encoding + DARK
    # decoding) or 'udp'.
    codec: str = "gaussian"
    # Feed RGB images. The official ResNet configs fed BGR (with RGB statistics); set false to
    # evaluate their released checkpoints as they were trained.
    color_rgb: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # Box padding and the unit of scale (the official pixel_std).
    padding: float = 1.25
    pixel_std: float = 200.0
    # Skip (and count) corrupt images during training instead of stopping.
    skip_corrupt_images: bool = False
    # Decode JPEGs at 1/2, 1/4 or 1/8 size when the crop is small enough that the crop is never
    # enlarged from the reduced image (changes pixels by interpolation noise only).
    reduced_decode: bool = False
    # Keep decoded images in memory after first use (per process; small datasets only, not with
    # reduced_decode).
    cache_images: bool = False
    # Annotation file and image folder of a split, relative to root; '{set}' is the split's name.
    ann_file: str = "annotations/person_keypoints_{set}.json"
    image_dir: str = "images/{set}"
    keypoints: KeypointsConfig = field(default_factory=KeypointsConfig)
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 210
    optimizer: str = "adam"
    lr: float = 1e-3
    # The official YAMLs say 1e-4, but their Adam never received it: the published numbers
    # were trained with 0, which is our default.
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    # 'multistep' (official): the LR is multiplied by lr_factor at each of lr_steps. 'cosine': it
    # follows half a cosine from lr (first epoch) towards min_lr over the epochs (lr_steps unused).
    lr_schedule: str = "multistep"
    lr_steps: tuple[int, ...] = (170, 200)
    lr_factor: float = 0.1
    min_lr: float = 0.0
    # 'epoch_end': the LR drops after lr_steps epochs, as configured. 'epoch_start': the
    # official code's order (scheduler stepped before each epoch), which on PyTorch >= 1.1
    # makes every drop come one epoch early.
    lr_step_timing: str = "epoch_end"
    # Images per process (per GPU).
    batch_size: int = 32
    workers: int = 4
    use_target_weight: bool = True
    # Online hard keypoint mining: the loss of the top-k joints per sample only.
    ohkm: bool = False
    ohkm_topk: int = 8
    # Per-joint loss weights (empty: all 1). The official COCO values are
    # 1x7, 1.2x2, 1.5x2, 1x2, 1.2x2, 1.5x2 (USE_DIFFERENT_JOINTS_WEIGHT).
    joint_weights: tuple[float, ...] = ()
    # Use the keypoint set's joint_weights (for 'coco': the official values above) instead.
    set_joint_weights: bool = False
    # Mixed precision: none, bf16 or fp16 (fp16 uses a grad scaler); auto: bf16 on a GPU that
    # supports it or a CPU with bf16 matrix units (AMX, AVX512-BF16), else none.
    amp: str = "none"
    channels_last: bool = False
    # Validate (COCO AP) every N epochs, and after the last one.
    val_every: int = 1
    print_freq: int = 50
    # Continue from output_dir/checkpoint.pth when it exists.
    auto_resume: bool = True
    # Use deterministic algorithms (bit-identical resumed runs on CPU).
    deterministic: bool = False
    # Stop each epoch after this many iterations (0: the whole dataset). For smoke tests.
    max_iters_per_epoch: int = 0
    # torch.compile (inductor) of the training forward and backward: true, false, or auto (on CUDA
    # only, and not with deterministic). Where inductor cannot run (no C++ compiler for the CPU, no
    # Triton for the GPU) training stays eager, with a warning for true.
    compile: str = "false"
    # Log loss, LR, samples/s, validation numbers and drawn predictions to output_dir/tensorboard
    # (needs the tensorboard package: pip install -e '.[tensorboard]').
    tensorboard: bool = False


@dataclass(frozen=True)
class TestConfig:
    batch_size: int = 32
    flip_test: bool = True
    # Shift the flipped heatmaps one pixel right before averaging (official; gaussian codec).
    shift_heatmap: bool = True
    use_gt_bbox: bool = True
    # Detection boxes below this score are dropped (official image_thre: 0.0).
    det_score_thresh: float = 0.0
    # Keypoints above this score count in rescoring (official in_vis_thre).
    kpt_score_thresh: float = 0.2
    oks_nms_thresh: float = 0.9
    soft_nms: bool = False
    # Sub-pixel refinement on decoding: 'default' (the codec's own: quarter offset for
    # gaussian, UDP's for udp), 'dark', or 'none'.
    refine: str = "default"
    # Weights to evaluate ('' : output_dir/model_best.pth).
    weights: str = ""
    # 'pycocotools' or 'faster_coco_eval' (same ten numbers, faster; must be installed).
    eval_backend: str = "pycocotools"
    # Inference precision of tools/test.py and the predictor: 'none' (float32, the published
    # numbers), 'bf16' / 'fp16' autocast, or 'auto' (bf16 where the CPU has bf16 units (AMX,
    # AVX512-BF16) or the GPU supports it, else float32). bf16 rounding can move a keypoint by a
    # heatmap pixel where two peaks nearly tie, so it is opt-in: AP may differ slightly.
    amp: str = "none"
    # Run the network in channels_last memory format (faster convolutions on CPUs, with bf16).
    channels_last: bool = False
    # Inference compiled by inductor with the weights frozen in (BatchNorm folded, convolution
    # weights packed once, elementwise steps fused) for tools/test.py and the predictor: true,
    # false, or auto (on CUDA only: on a CPU, compiling HRNet takes minutes, worth it over a
    # large split or many images, not a small one). Each batch size compiles once; tools/test.py
    # pads its last batch to the full size. Without a working backend: one warning, eager.
    compile: str = "false"


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    # Where checkpoints, logs, metrics and results go ('' : output/<config file stem>).
    output_dir: str = ""
    seed: int = 0
    # 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'.
    device: str = "auto"
    # 'retain': tensor memory freed on the CPU stays in the process for the next tensor, instead of
    # going back to the kernel and being zero-filled again on its next use (glibc; see
    # pose.runtime.configure_cpu_malloc). 'system': the C library's defaults.
    cpu_malloc: str = "retain"


# Allowed values of the string fields that are a choice.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.psa": ("none", "parallel", "sequential"),
    "model.psa_variant": ("paper", "official"),
    "model.psa_placement": ("all", "basic"),
    "data.codec": ("gaussian", "dark", "udp"),
    "data.synthetic.figure": ("person", "animal"),
    "data.dataset": ("coco", "crowdpose", "mpii"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.lr_schedule": ("multistep", "cosine"),
    "train.lr_step_timing": ("epoch_end", "epoch_start"),
    "train.amp": ("none", "bf16", "fp16", "auto"),
    "train.compile": ("auto", "true", "false"),
    "test.refine": ("default", "dark", "none"),
    "test.eval_backend": ("pycocotools", "faster_coco_eval"),
    "test.amp": ("none", "bf16", "fp16", "auto"),
    "test.compile": ("auto", "true", "false"),
    "cpu_malloc": ("retain", "system"),
}


def load_config(path: str | os.PathLike | None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the YAML at ``path`` (and its ``base`` chain), then ``overrides``."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml_chain(Path(path), seen=())
    cfg = _build_config(raw, source=str(path))
    cfg = apply_overrides(cfg, overrides)
    if not cfg.output_dir and path is not None:
        cfg = dataclasses.replace(cfg, output_dir=str(Path("output") / Path(path).stem))
    elif not cfg.output_dir:
        cfg = dataclasses.replace(cfg, output_dir="output/default")
    return cfg


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """Return ``cfg`` with ``section.key=value`` overrides applied (value parsed as YAML)."""
    tree = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not of the form section.key=value (e.g. train.lr=0.0005)")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        node = tree
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: unknown key {'.'.join(parts[:i + 1])!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r}")
        if isinstance(node[parts[-1]], dict):
            raise ConfigError(f"override {item!r}: {key!r} is a section, name one of its keys")
        node[parts[-1]] = value
    return _build_config(tree, source="command-line overrides" if overrides else "config")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), for YAML and checkpoints."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def from_dict(tree: dict[str, Any], source: str = "checkpoint") -> Config:
    """Rebuild a :class:`Config` from :func:`to_dict` output, validating it."""
    return _build_config(tree, source=source)


def configured_keypoint_set(cfg: Config, source: str = "config") -> KeypointSet | None:
    """The keypoint set ``cfg.data.keypoints`` names without looking at data (a built-in name,
    explicit ``names``, or the set of a ``data.dataset`` format with fixed joints: MPII, CrowdPose),
    or None for 'auto' without names on COCO-format data (the annotation file decides)."""
    section = to_dict(cfg.data.keypoints)
    fixed = DATASET_SETS.get(cfg.data.dataset)
    if fixed is not None and section["name"] == "auto":
        section["name"] = fixed
    if section["name"] == "auto" and not section["names"]:
        return None
    try:
        kset = resolve(section, None, source=f"{source}: data.keypoints")
    except KeypointSetError as exc:
        raise ConfigError(str(exc)) from None
    if fixed is not None and kset.names != BUILTIN_SETS[fixed].names:
        raise ConfigError(f"{source}: data.dataset={cfg.data.dataset} has the {fixed} joints, but data.keypoints "
                          f"gives {kset.num_joints} others ({kset.name!r}); leave data.keypoints.name at auto")
    return kset


def with_keypoint_set(cfg: Config, kset: KeypointSet) -> Config:
    """``cfg`` with ``data.keypoints`` set to ``kset`` (every field written out) and
    ``model.num_joints`` to its joint count; a non-zero ``model.num_joints`` must equal it."""
    n = cfg.model.num_joints
    if n not in (0, kset.num_joints):
        raise ConfigError(f"model.num_joints={n} but the keypoint set {kset.name!r} (data.keypoints) has "
                          f"{kset.num_joints} joints: set model.num_joints={kset.num_joints}, or 0 to take "
                          "the set's count")
    section = _build(KeypointsConfig, kset.to_dict(), prefix="data.keypoints.", source=kset.source or "keypoint set")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_joints=kset.num_joints),
                               data=dataclasses.replace(cfg.data, keypoints=section))


def legacy_keypoints(cfg: Config) -> Config:
    """A config saved before keypoint sets existed (``data.keypoints`` auto, no names) is COCO-17's."""
    if cfg.data.keypoints.name == "auto" and not cfg.data.keypoints.names \
            and cfg.model.num_joints in (0, COCO17.num_joints):
        return with_keypoint_set(cfg, COCO17)
    return cfg


def loss_joint_weights(cfg: Config, kset: KeypointSet) -> tuple[float, ...]:
    """Per-joint loss weights: the set's when ``train.set_joint_weights``, else ``train.joint_weights``
    (empty: all 1)."""
    return kset.joint_weights if cfg.train.set_joint_weights else cfg.train.joint_weights


def _build_config(tree: dict[str, Any], source: str) -> Config:
    cfg = _build(Config, tree, prefix="", source=source)
    if cfg.train.set_joint_weights and cfg.train.joint_weights:
        raise ConfigError(f"{source}: train.joint_weights and train.set_joint_weights=true both give the "
                          "per-joint loss weights; keep one")
    if cfg.model.num_joints < 0:
        raise ConfigError(f"{source}: model.num_joints must be >= 0 (0: the keypoint set's count), "
                          f"got {cfg.model.num_joints}")
    kset = configured_keypoint_set(cfg, source)
    if kset is not None:  # model.num_joints must agree, and takes the set's count
        try:
            with_keypoint_set(cfg, kset)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_joints=kset.num_joints))
    return cfg


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the merged config as YAML, atomically (see :mod:`pose.atomic_io`)."""
    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())


def config_diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, with (a, b) values."""
    flat_a, flat_b = _flatten(to_dict(a)), _flatten(to_dict(b))
    return {k: (flat_a.get(k), flat_b.get(k)) for k in sorted(flat_a.keys() | flat_b.keys())
            if flat_a.get(k) != flat_b.get(k)}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_yaml_chain(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        with open(path) as fh:
            tree = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); expected YAML") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a path string, got {base!r}")
    if not (path.parent / base).is_file():
        raise ConfigError(f"{path}: base config {base!r} not found (looked for {path.parent / base})")
    merged = _read_yaml_chain(path.parent / base, seen + (resolved,))
    _deep_update(merged, tree, path)
    return merged


def _deep_update(dst: dict[str, Any], src: dict[str, Any], path: Path) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_update(dst[key], value, path)
        else:
            dst[key] = value


def _build(cls: type, tree: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: {where} must be a mapping, got {tree!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(tree) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix + str(unknown[0])!r} "
                          f"(valid keys of {where}: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in tree.items():
        key = prefix + name
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, key + ".", source)
        else:
            if isinstance(value, bool) and "true" in CHOICES.get(key, ()):  # YAML reads true/false as booleans
                value = "true" if value else "false"
            kwargs[name] = _coerce(value, kind, key, source)
            if key in CHOICES and kwargs[name] not in CHOICES[key]:
                raise ConfigError(f"{source}: {key}={kwargs[name]!r} is not one of "
                                  f"{', '.join(CHOICES[key])}")
    return cls(**kwargs)


def _coerce(value: Any, kind: Any, key: str, source: str) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if kind is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads '5e-4' (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                fail("a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail("a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (list, tuple)):
            fail(f"a list ({_describe(kind)})")
        if len(args) == 2 and args[1] is Ellipsis:
            item_kinds = [args[0]] * len(value)
        else:
            item_kinds = list(args)
            if len(value) != len(item_kinds):
                fail(f"a list of {len(item_kinds)} ({_describe(kind)})")
        return tuple(_coerce(v, k, f"{key}[{i}]", source)
                     for i, (v, k) in enumerate(zip(value, item_kinds)))
    raise TypeError(f"unsupported config type for {key}: {kind}")


def _describe(kind: Any) -> str:
    args = typing.get_args(kind)
    if len(args) == 2 and args[1] is Ellipsis:
        return f"{args[0].__name__}, ..."
    return ", ".join(a.__name__ for a in args)
