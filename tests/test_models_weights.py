"""Weight loading: round trips, prefixes, wrappers, readable mismatch errors, backbone loading."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pose.config import load_config
from pose.models import WeightsError, build_model, create_model, load_backbone, load_for_finetuning, load_weights

ROOT = Path(__file__).resolve().parents[1]


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "module_prefix"])
def test_round_trip(tmp_path, wrap):
    torch.manual_seed(0)
    src = create_model("hrnet_tiny", psa="parallel", init_std=0)
    sd = src.state_dict()
    obj = {"raw": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd, "optimizer": {}},
           "module_prefix": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = _save(obj, tmp_path / "w.pth")
    dst = create_model("hrnet_tiny", psa="parallel")
    assert not _same(src, dst)
    report = load_weights(dst, path)
    assert report.ok and len(report.loaded) == len(sd)
    assert _same(src, dst)
    x = torch.randn(1, 3, 64, 48)
    assert torch.equal(src.eval()(x), dst.eval()(x))


def test_missing_batch_counters_are_fine(tmp_path):
    # Official releases were saved before BN had num_batches_tracked.
    src = create_model("resnet_tiny")
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert load_weights(create_model("resnet_tiny"), _save(sd, tmp_path / "old.pth")).ok


def test_non_psa_checkpoint_into_psa_network_misses_exactly_the_psa_keys(tmp_path):
    path = _save(create_model("hrnet_tiny").state_dict(), tmp_path / "base.pth")
    for psa, placement in [("parallel", "all"), ("sequential", "basic")]:
        model = create_model("hrnet_tiny", psa=psa, psa_placement=placement)
        report = load_weights(model, path, strict=False)
        psa_keys = [k for k in model.state_dict() if ".psa." in k]
        assert psa_keys and sorted(report.missing) == sorted(psa_keys)
        assert not report.unexpected and not report.mismatched
        with pytest.raises(WeightsError) as info:
            load_weights(model, path)
        message = str(info.value)
        assert str(path) in message and "missing in the file" in message and ".psa." in message


def test_mismatch_error_is_readable(tmp_path):
    sd = create_model("hrnet_tiny", num_joints=17).state_dict()
    sd["extra.weight"] = torch.zeros(3)
    del sd["conv1.weight"]
    path = _save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        load_weights(create_model("hrnet_tiny", num_joints=5), path)
    message = str(info.value)
    assert str(path) in message
    assert "1 missing in the file" in message and "conv1.weight" in message
    assert "1 unexpected" in message and "extra.weight" in message
    assert "final_layer.weight: [17, 16, 1, 1] vs [5, 16, 1, 1]" in message


@pytest.mark.parametrize("arch", ["hrnet_tiny", "resnet_tiny"])
def test_finetuning_loads_all_but_a_final_layer_of_another_joint_count(tmp_path, arch):
    torch.manual_seed(0)
    source = create_model(arch, num_joints=17)
    path = _save({"model": source.state_dict(), "config": {}}, tmp_path / "coco.pth")
    target = create_model(arch, num_joints=20)
    final_before = target.final_layer.weight.detach().clone()
    report = load_for_finetuning(target, path)
    assert [k for k, _, _ in report.skipped] == ["final_layer.weight", "final_layer.bias"]
    assert "2 skipped (fine-tuning to another keypoint set" in str(report) and report.ok
    for key, value in source.state_dict().items():
        if not key.startswith("final_layer."):
            assert torch.equal(target.state_dict()[key], value), key
    assert torch.equal(target.final_layer.weight, final_before)  # left as initialised
    # A strict load names the option; the same joint count loads everything; another net is refused.
    with pytest.raises(WeightsError, match="weights are for 17 joints, the network has 20 .*model.finetune_from"):
        load_weights(create_model(arch, num_joints=20), path)
    assert load_for_finetuning(create_model(arch, num_joints=17), path).skipped == []
    with pytest.raises(WeightsError, match="does not fit .* beyond its final layer"):
        load_for_finetuning(create_model(arch, num_joints=20, psa="parallel"), path)


def test_long_key_lists_are_grouped(tmp_path):
    path = _save(create_model("resnet_tiny").state_dict(), tmp_path / "r.pth")
    with pytest.raises(WeightsError) as info:
        load_weights(create_model("hrnet_tiny"), path)
    message = str(info.value)
    assert len(message.splitlines()) < 40
    assert "stage2.*" in message and "(x" in message


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint at all", "cannot read weights file"),
    (None, "does not exist"),
])
def test_unreadable_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "broken.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as info:
        load_weights(create_model("resnet_tiny"), path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path):
    path = _save(create_model("resnet_tiny").state_dict(), tmp_path / "t.pth")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="cannot read weights file .*t.pth"):
        load_weights(create_model("resnet_tiny"), path)


def test_not_a_state_dict(tmp_path):
    path = _save({"epoch": 3, "best": 0.5}, tmp_path / "meta.pth")
    with pytest.raises(WeightsError, match="meta.pth has no tensors .*epoch, best"):
        load_weights(create_model("resnet_tiny"), path)
    path = _save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth holds a list"):
        load_weights(create_model("resnet_tiny"), path)


def _imagenet_file(tmp_path: Path, arch: str) -> tuple[Path, dict]:
    """A torchvision-style ImageNet file: the backbone plus fc.* (and nothing of the pose head)."""
    torch.manual_seed(1)
    sd = {k: v for k, v in create_model(arch, init_std=0).state_dict().items()
          if k.split(".")[0] not in ("deconv_layers", "final_layer")}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 32), torch.randn(1000)
    return _save(sd, tmp_path / f"{arch}_imagenet.pth"), sd


def test_backbone_loading_reports_and_loads(tmp_path):
    path, sd = _imagenet_file(tmp_path, "resnet_tiny")
    model = create_model("resnet_tiny", psa="parallel")
    report = load_backbone(model, path)
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]
    assert not report.mismatched and not report.unexpected
    assert all(k.startswith(("deconv_layers", "final_layer")) or ".psa." in k for k in report.missing)
    assert any(".psa." in k for k in report.missing) and "final_layer.weight" in report.missing
    assert torch.equal(model.state_dict()["layer4.0.conv2.weight"], sd["layer4.0.conv2.weight"])
    text = str(report)
    assert "2 ignored" in text and "fc.weight" in text


def test_backbone_shape_clash_and_nothing_loaded(tmp_path):
    path, sd = _imagenet_file(tmp_path, "resnet_tiny")
    sd["layer1.0.conv1.weight"] = torch.zeros(1, 1, 3, 3)
    clash = _save(sd, tmp_path / "clash.pth")
    with pytest.raises(WeightsError, match="(?s)clash.pth clash with PoseResNet.*layer1.0.conv1.weight"):
        load_backbone(create_model("resnet_tiny"), clash)
    other = _save({"classifier.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="nothing loaded"):
        load_backbone(create_model("hrnet_tiny"), other)


def test_hrnet_backbone_ignores_classification_extras(tmp_path):
    # The ImageNet HRNet has incre_modules / classifier / its own final_layer, and a last module with
    # all fuse layers; none of them belongs to the pose network.
    sd = {k: v for k, v in create_model("hrnet_tiny").state_dict().items() if not k.startswith("final_layer")}
    sd.update({"final_layer.0.weight": torch.zeros(8, 4, 1, 1), "classifier.weight": torch.zeros(10, 8),
               "incre_modules.0.0.conv1.weight": torch.zeros(4, 4, 1, 1),
               "stage4.0.fuse_layers.1.0.0.0.weight": torch.zeros(16, 16, 3, 3)})
    report = load_backbone(create_model("hrnet_tiny"), _save(sd, tmp_path / "cls.pth"))
    assert len(report.ignored) == 4 and report.missing == ["final_layer.weight", "final_layer.bias"]


def test_build_model_loads_pretrained(tmp_path, capsys):
    path, sd = _imagenet_file(tmp_path, "resnet_tiny")
    cfg = load_config(None, ["model.arch=resnet_tiny", f"model.pretrained={path}", "model.psa=parallel"])
    model = build_model(cfg)
    assert torch.equal(model.state_dict()["conv1.weight"], sd["conv1.weight"])
    assert model.pretrained_report.ignored == ["fc.weight", "fc.bias"]
    assert "ImageNet backbone" in capsys.readouterr().out


def test_model_info_tool():
    out = subprocess.run([sys.executable, str(ROOT / "tools/model_info.py"), "--cfg",
                          str(ROOT / "experiments/synthetic/tiny.yaml"), "model.psa=none"],
                         capture_output=True, text=True, check=True).stdout
    assert "hrnet_tiny" in out and "48x64" in out and "GFLOPs" in out
