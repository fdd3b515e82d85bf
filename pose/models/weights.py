"""Reading checkpoints and loading them into networks, with readable reports.

* :func:`load_weights`: a whole network (strict by default), e.g. ``pose_hrnet_w32_256x192.pth``
  or one of our own checkpoints.
* :func:`load_for_finetuning`: a whole network trained on another keypoint set: everything but
  the final layer (``final_layer.*``), which is skipped when its joint count differs.
* :func:`load_backbone`: ImageNet weights (``resnet50-19c8e357.pth``, ``hrnet_w32-36af842e.pth``)
  into the backbone part of a network; the classification head and any other key outside the
  model's ``backbone_prefixes`` is ignored (and reported), a shape clash is an error.

All accept a raw state dict or a checkpoint dict with a ``state_dict`` or ``model`` entry, and strip
a leading ``module.`` (DataParallel / DDP). Files are read with ``torch.load(weights_only=True)``:
tensors and plain containers only, never arbitrary pickled code.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

# The layer that maps features to one heatmap per joint: the only part tied to the keypoint set.
FINAL_LAYER = "final_layer."


class WeightsError(RuntimeError):
    """A weights file cannot be read, or does not fit the network; the message names the file."""


@dataclass
class LoadReport:
    """What happened when a weights file was loaded into a network.

    ``missing``: network keys the file did not provide (left as initialised). ``unexpected``: file
    keys the network does not have. ``mismatched``: (key, file shape, network shape). ``ignored``:
    file keys deliberately skipped (backbone loading: the classification head and the like).
    """

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, max_lines: int = 12) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        for title, keys in (("missing in the file (left as initialised)", self.missing),
                            ("unexpected (in the file, not in the network)", self.unexpected),
                            ("ignored (not part of the backbone)", self.ignored)):
            if keys:
                lines.append(f"  {len(keys)} {title}:")
                lines += [f"    {s}" for s in group_keys(keys, max_lines)]
        if self.skipped:
            lines.append(f"  {len(self.skipped)} skipped (fine-tuning to another keypoint set: file vs network, "
                         "left as initialised):")
            lines += [f"    {key}: {list(a)} vs {list(b)}" for key, a, b in self.skipped]
        if self.mismatched:
            lines.append(f"  {len(self.mismatched)} with a different shape (file vs network):")
            for key, a, b in self.mismatched[:max_lines]:
                lines.append(f"    {key}: {list(a)} vs {list(b)}")
            if len(self.mismatched) > max_lines:
                lines.append(f"    ... and {len(self.mismatched) - max_lines} more")
        return "\n".join(lines)

    __str__ = format


def group_keys(keys: list[str], max_lines: int = 12) -> list[str]:
    """Keys as at most ``max_lines`` lines: all of them if few, else grouped by pattern.

    Patterns replace indices with ``*`` (``stage*.*.branches.*.*.psa.conv_up.weight  (x27)``); if
    that is still too long, keys are cut to fewer leading components (``stage*.*.branches.*.*.psa.*``).
    """
    if len(keys) <= max_lines:
        return list(keys)
    depth = max(k.count(".") for k in keys) + 1
    lines: list[str] = []
    for drop in range(depth):
        groups: dict[str, list[str]] = {}
        for k in keys:
            parts = ["*" if p.isdigit() else p for p in k.split(".")]
            keep = max(1, depth - drop)
            if len(parts) > keep:
                parts = parts[:keep] + ["*"]
            groups.setdefault(".".join(parts), []).append(k)
        lines = [f"{pat}  (x{len(ks)}, e.g. {ks[0]})" if len(ks) > 1 else ks[0] for pat, ks in groups.items()]
        if len(lines) <= max_lines:
            return lines
    return lines[:max_lines] + [f"... and {len(lines) - max_lines} more groups"]


def _load_error_reason(exc: Exception) -> str:
    """The informative line of a ``torch.load`` error: the weights-only unpickler's reason when there is
    one (its first line is a generic paragraph), else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    marker = "WeightsUnpickler error:"
    for i, line in enumerate(lines):
        if marker in line:
            rest = line.split(marker, 1)[1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return (f"{type(exc).__name__}: {rest.split('. ')[0][:300]} (only tensors and plain containers "
                    "are read)")
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, ``module.`` stripped. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist" if not path.exists()
                           else f"weights path {path} is not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, not a torch file, or pickled objects
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head.startswith((b"PK", b"\x80")):  # torch.save writes a zip archive (or, legacy, a pickle)
            raise WeightsError(f"cannot read weights file {path}: not a PyTorch checkpoint (neither a zip "
                               f"archive nor a pickle; it starts with {head!r})") from e
        raise WeightsError(f"cannot read weights file {path} (corrupt, truncated or not a PyTorch "
                           f"checkpoint?): {_load_error_reason(e)}") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {path} holds a {type(obj).__name__}, not a state dict or a "
                           "checkpoint dict with 'state_dict' / 'model'")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        top = ", ".join(map(str, list(obj)[:10]))
        raise WeightsError(f"weights file {path} has no tensors (top-level keys: {top}); expected a state "
                           "dict or a checkpoint dict with 'state_dict' / 'model'")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def _is_counter(key: str) -> bool:
    # BN's num_batches_tracked: absent from checkpoints saved by PyTorch < 0.4.1 (the official
    # releases); PyTorch fills it in, so its absence is not a mismatch.
    return key.endswith("num_batches_tracked")


def _compare(model: nn.Module, sd: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    own = model.state_dict()
    usable = {}
    for key, value in sd.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            usable[key] = value
    report.missing = [k for k in own if k not in usable and not _is_counter(k)
                      and k not in {m[0] for m in report.mismatched}]
    report.loaded = list(usable)
    return usable


def _apply(model: nn.Module, usable: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    # Fill counters the file lacks so load_state_dict has nothing to complain about.
    full = {k: usable.get(k, v) for k, v in own.items()}
    full.update(usable)
    model.load_state_dict(full, strict=True)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a weights file into ``model``; returns a :class:`LoadReport`.

    strict: any missing, unexpected or differently shaped key raises :class:`WeightsError` naming
    the file and listing the keys (grouped by pattern when long). strict=False loads what fits and
    returns the report, which the caller should print (``print(report)``).
    """
    sd = read_state_dict(path)
    report = LoadReport(str(path))
    usable = _compare(model, sd, report)
    if strict and not report.ok:
        hint = ""
        if report.mismatched and all(k.startswith(FINAL_LAYER) for k, _, _ in report.mismatched):
            file_k, net_k = report.mismatched[0][1][0], report.mismatched[0][2][0]
            hint = (f"\nthe file's weights are for {file_k} joints, the network has {net_k} (data.keypoints): "
                    "to start from them on this keypoint set, set model.finetune_from to the file")
        raise WeightsError(f"weights file {path} does not match {type(model).__name__} "
                           f"(strict loading):\n{report.format()}{hint}")
    if not usable:
        raise WeightsError(f"weights file {path}: no tensor fits {type(model).__name__}\n{report.format()}")
    _apply(model, usable)
    return report


def load_for_finetuning(model: nn.Module, path: str | Path) -> LoadReport:
    """Load a network trained on any keypoint set into ``model`` to fine-tune it on its own set.

    Every tensor is loaded except the final layer's (``final_layer.*``: one output channel per
    joint) when its shape differs; those are ``skipped`` in the report and stay as initialised.
    Anything else that does not fit (another architecture, PSA or not) raises :class:`WeightsError`
    naming the file and the keys.
    """
    sd = read_state_dict(path)
    report = LoadReport(str(path))
    usable = _compare(model, sd, report)
    report.skipped = [m for m in report.mismatched if m[0].startswith(FINAL_LAYER)]
    report.mismatched = [m for m in report.mismatched if not m[0].startswith(FINAL_LAYER)]
    if not report.ok:
        raise WeightsError(f"weights file {path} does not fit {type(model).__name__} beyond its final layer "
                           f"(model.finetune_from needs the same architecture):\n{report.format()}")
    _apply(model, usable)
    return report


def load_backbone(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ImageNet weights into the backbone of ``model`` (keys under ``model.backbone_prefixes``).

    File keys outside the backbone, or that the network lacks (e.g. the extra fuse layers of the
    classification HRNet), are ``ignored``; the network's head and PSA blocks stay ``missing``
    (initialised). A shape clash, or nothing loaded at all, raises :class:`WeightsError`.
    """
    prefixes = tuple(getattr(model, "backbone_prefixes", ()))
    if not prefixes:
        raise WeightsError(f"{type(model).__name__} declares no backbone_prefixes; cannot load {path}")
    sd = read_state_dict(path)
    own = model.state_dict()
    report = LoadReport(str(path))
    picked = {}
    for key, value in sd.items():
        if key.split(".")[0] in prefixes and key in own:
            picked[key] = value
        else:
            report.ignored.append(key)
    usable = _compare(model, picked, report)
    if report.mismatched:
        raise WeightsError(f"backbone weights {path} clash with {type(model).__name__} (wrong architecture "
                           f"or width?):\n{report.format()}")
    if not usable:
        raise WeightsError(f"backbone weights {path}: nothing loaded into {type(model).__name__} "
                           f"(expected keys under {', '.join(prefixes)})\n{report.format()}")
    _apply(model, usable)
    return report
