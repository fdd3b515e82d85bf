"""Networks: shapes, finiteness, gradients, parameter counts, official key names, configs."""

import pytest
import torch

from pose.models import count_flops, count_params, create_model, list_archs

TINY = ("hrnet_tiny", "resnet_tiny")
PSA_OPTIONS = [("none", "paper", "all"), ("parallel", "paper", "all"), ("sequential", "paper", "all"),
               ("parallel", "official", "all"), ("sequential", "official", "basic")]


def test_list_archs():
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "hrnet_w32", "hrnet_w48",
            "hrnet_tiny", "hrnet_small", "resnet_tiny"} <= set(list_archs())


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model arch 'hrnet_w99'; valid: .*resnet50.*hrnet_w32"):
        create_model("hrnet_w99")


@pytest.mark.parametrize("arch", TINY)
@pytest.mark.parametrize("psa, variant, placement", PSA_OPTIONS)
def test_tiny_shape_finite_and_every_parameter_gets_a_gradient(arch, psa, variant, placement):
    torch.manual_seed(0)
    # init_std=0: PyTorch's init, so gradients are not vanishingly small through the tiny nets.
    model = create_model(arch, num_joints=5, psa=psa, psa_variant=variant, psa_placement=placement,
                         init_std=0)
    x = torch.randn(2, 3, 64, 32)
    out = model(x)
    assert out.shape == (2, 5, 16, 8)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
    n_psa = sum(1 for n, _ in model.named_modules() if n.endswith(".psa"))
    assert (n_psa > 0) == (psa != "none")


def test_hrnet_odd_input_size():
    # 64x48: the lower branches are 6, 3 and 2 pixels wide; upsampled maps are cropped to fit.
    out = create_model("hrnet_tiny", psa="parallel")(torch.randn(1, 3, 64, 48))
    assert out.shape == (1, 17, 16, 12)


def test_placement_basic_skips_bottlenecks():
    model = create_model("hrnet_tiny", psa="parallel", psa_placement="basic")
    names = [n for n, _ in model.named_modules() if n.endswith(".psa")]
    assert names and not any(n.startswith("layer1") for n in names)
    model = create_model("hrnet_tiny", psa="parallel")
    assert "layer1.0.psa" in [n for n, _ in model.named_modules()]
    r50 = [n for n, _ in create_model("resnet_tiny", psa="parallel").named_modules() if n.endswith("psa")]
    assert "layer1.0.psa" in r50


@pytest.mark.parametrize("arch, input_hw", [
    ("resnet18", (256, 192)), ("resnet34", (256, 192)), ("resnet50", (256, 192)),
    ("resnet101", (384, 288)), ("resnet152", (256, 192)), ("hrnet_w32", (256, 192)),
    ("hrnet_w48", (384, 288)), ("hrnet_small", (128, 96)),
])
def test_big_archs_output_shape_on_meta(arch, input_hw):
    with torch.device("meta"):
        model = create_model(arch, psa="parallel")
        out = model(torch.empty(1, 3, *input_hw))
    assert out.shape == (1, 17, input_hw[0] // 4, input_hw[1] // 4)


@pytest.mark.parametrize("arch, published_m", [("resnet50", 34.0), ("hrnet_w32", 28.5), ("hrnet_w48", 63.6)])
def test_parameter_counts_match_published(arch, published_m):
    with torch.device("meta"):
        n = count_params(create_model(arch))
    assert abs(n / 1e6 - published_m) / published_m < 0.005, n


@pytest.mark.parametrize("arch, published", [("resnet50", 8.9), ("hrnet_w32", 7.1), ("hrnet_w48", 14.6)])
def test_gflops_match_published(arch, published):
    with torch.device("meta"):
        gflops = count_flops(create_model(arch), (192, 256))
    assert abs(gflops - published) / published < 0.015, gflops


def test_psa_adds_few_flops():
    with torch.device("meta"):
        base = count_flops(create_model("hrnet_w32"), (192, 256))
        psa = count_flops(create_model("hrnet_w32", psa="parallel"), (192, 256))
        ref = create_model("hrnet_w32", psa="parallel")
        for m in ref.modules():
            if hasattr(m, "reference"):
                m.reference = True
        straight = count_flops(ref, (192, 256))
    assert 0 < psa - base < 0.01 * base < straight - base


# Official names (read from deep-high-resolution-net.pytorch lib/models/pose_resnet.py / pose_hrnet.py
# and torchvision resnet50) with their shapes.
R50_KEYS = {
    "conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer1.0.downsample.1.bias": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3), "layer3.5.bn3.weight": (1024,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "deconv_layers.0.weight": (2048, 256, 4, 4), "deconv_layers.1.running_mean": (256,),
    "deconv_layers.3.weight": (256, 256, 4, 4), "deconv_layers.7.weight": (256,),
    "final_layer.weight": (17, 256, 1, 1), "final_layer.bias": (17,),
}
W32_KEYS = {
    "conv1.weight": (64, 3, 3, 3), "conv2.weight": (64, 64, 3, 3), "bn2.bias": (64,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer1.3.conv3.weight": (256, 64, 1, 1),
    "transition1.0.0.weight": (32, 256, 3, 3), "transition1.0.1.weight": (32,),
    "transition1.1.0.0.weight": (64, 256, 3, 3), "transition1.1.0.1.running_var": (64,),
    "transition2.2.0.0.weight": (128, 64, 3, 3), "transition3.3.0.0.weight": (256, 128, 3, 3),
    "stage2.0.branches.0.0.conv1.weight": (32, 32, 3, 3), "stage2.0.branches.1.3.bn2.weight": (64,),
    "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1), "stage2.0.fuse_layers.0.1.1.weight": (32,),
    "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3), "stage2.0.fuse_layers.1.0.0.1.bias": (64,),
    "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),  # two stride-2 steps: ReLU after the first
    "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
    "stage3.3.fuse_layers.2.1.0.0.weight": (128, 64, 3, 3),
    "stage3.0.fuse_layers.0.2.0.weight": (32, 128, 1, 1),
    "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
    "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
    "stage4.1.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),
    "final_layer.weight": (17, 32, 1, 1), "final_layer.bias": (17,),
}


@pytest.mark.parametrize("arch, keys", [("resnet50", R50_KEYS), ("hrnet_w32", W32_KEYS)])
def test_official_key_names(arch, keys):
    with torch.device("meta"):
        sd = create_model(arch).state_dict()
    for key, shape in keys.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("stage4.2.fuse_layers.1") for k in sd), "last module: one output"
    assert not any("transition1.1.1" in k or "transition2.0" in k for k in sd)
    prefixes = {k.split(".")[0] for k in sd}
    expected = ({"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "deconv_layers", "final_layer"}
                if arch == "resnet50" else {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                                             "transition2", "stage3", "transition3", "stage4", "final_layer"})
    assert prefixes == expected


def test_init_std():
    m = create_model("hrnet_tiny", psa="parallel", init_std=0.001)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert all(abs(c.weight.std().item() - 0.001) < 0.0006 for c in convs if c.weight.numel() > 200)
    assert all(c.bias is None or not c.bias.any() for c in convs)
    norms = [mod for mod in m.modules() if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))]
    assert all((n.weight == 1).all() and (n.bias == 0).all() for n in norms)
    default = create_model("hrnet_tiny", init_std=0)
    assert default.conv1.weight.std() > 0.01
