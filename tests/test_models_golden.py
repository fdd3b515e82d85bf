"""Golden forward passes: fixed weights and input, heatmap statistics and samples stored here.

Structural tests (keys, shapes, parameter counts, FLOPs) cannot see a wrong fuse layer or a
misplaced ReLU: official weights would still load and give wrong heatmaps. These values pin the
forward pass that was checked against the official ``pose_hrnet.py`` / ``pose_resnet.py`` and
DeLightCMU's ``PSA.py``. A change that alters the numbers must update them on purpose:
``PYTHONPATH=. python tests/test_models_golden.py`` prints the table below from the current code.

Weights come from numpy's legacy ``RandomState`` (its stream is frozen), not from torch's
initialisers, so the values do not depend on the torch version. Every parameter and BatchNorm
statistic is random (the official init's std 0.001 and identity BatchNorms would leave the lower
branches' contributions below float noise), scaled by 1/sqrt(fan_in) to keep activations O(1).
"""

import numpy as np
import pytest
import torch

from pose.models import create_model

# (arch, psa, variant, placement, input (H, W)). For HRNet 64x48 gives odd low-resolution branches
# (2 px wide after three stride-2 steps), so a wrong upsampling factor is not hidden by the crop;
# ResNets need a multiple of 32.
CASES = {
    "hrnet_tiny": ("hrnet_tiny", "none", "paper", "all", (64, 48)),
    "hrnet_tiny_psa_p": ("hrnet_tiny", "parallel", "paper", "all", (64, 48)),
    "hrnet_tiny_psa_s": ("hrnet_tiny", "sequential", "paper", "all", (64, 48)),
    "hrnet_tiny_psa_p_official": ("hrnet_tiny", "parallel", "official", "all", (64, 48)),
    "hrnet_tiny_psa_s_official": ("hrnet_tiny", "sequential", "official", "basic", (64, 48)),
    "resnet_tiny": ("resnet_tiny", "none", "paper", "all", (96, 64)),
    "resnet_tiny_psa_p": ("resnet_tiny", "parallel", "paper", "all", (96, 64)),
    "resnet_tiny_psa_s": ("resnet_tiny", "sequential", "paper", "all", (96, 64)),
    "resnet_tiny_psa_p_official": ("resnet_tiny", "parallel", "official", "all", (96, 64)),
    "resnet_tiny_psa_s_official": ("resnet_tiny", "sequential", "official", "all", (96, 64)),
    "hrnet_small_psa_p": ("hrnet_small", "parallel", "paper", "all", (64, 48)),
    "hrnet_w32": ("hrnet_w32", "none", "paper", "all", (64, 48)),
    "resnet50": ("resnet50", "none", "paper", "all", (96, 64)),
}
NUM_JOINTS = 5
NUM_SAMPLES = 8

# name -> (mean, std, max |v|, sampled values at sample_indices(shape)). Regenerate with this
# file's __main__ (see the module docstring).
GOLDEN: dict[str, tuple[float, float, float, tuple[float, ...]]] = {
    "hrnet_tiny": (0.218676055, 1.96885437, 5.07131481,
        (0.490206987, 1.18867707, -1.41309083, 3.06310964, 1.32280636, -0.578125596, -1.56475902, -1.77977014)),
    "hrnet_tiny_psa_p": (-0.604408024, 2.01057461, 5.04676056,
        (-1.39449334, -2.719069, 2.55915618, -2.61364532, 2.45449758, -0.444905668, -0.575186014, 1.61527777)),
    "hrnet_tiny_psa_s": (-0.959232337, 1.49949585, 4.78312492,
        (-1.22975266, -3.92543435, 0.850635409, -3.19251251, 1.38657367, -1.01977193, -1.08960319, -0.0788841248)),
    "hrnet_tiny_psa_p_official": (0.215498703, 1.52209826, 5.11416769,
        (-0.381365955, -1.18958187, 2.42907739, -1.01237953, 1.37643778, 0.0286899935, -0.808280468, 2.12045026)),
    "hrnet_tiny_psa_s_official": (-0.183903414, 0.772262374, 2.13253045,
        (-0.350870997, -0.313016295, 0.347904593, -0.143426135, -0.637454987, -0.677544236, 1.29799867, -0.778216243)),
    "resnet_tiny": (0.105066811, 0.289342563, 1.27399671,
        (-0.219130769, -0.0622995421, -0.173605546, 0.107783124, -0.29125917, 0.422700435, 0.249943078, 0.252031446)),
    "resnet_tiny_psa_p": (-0.0235040462, 0.722289302, 3.15421748,
        (-0.0308261048, -0.127214447, 0.711154103, -0.716373086, -0.118117526, -1.12484217, 0.3698892, 0.600676298)),
    "resnet_tiny_psa_s": (-0.0361377601, 0.284804864, 1.43852472,
        (-0.0318440832, -0.075982824, 0.153637275, -0.438699663, -0.035209123, -0.752473116, 0.266497284, 0.125446469)),
    "resnet_tiny_psa_p_official": (-0.105793114, 0.278025488, 1.38787913,
        (0.12097051, -0.164449692, -0.158788025, -0.0336683877, -0.458760768, -0.461053073, 0.102621868, -0.44494468)),
    "resnet_tiny_psa_s_official": (0.0471646556, 0.367503728, 1.94525874,
        (-0.0187840927, -0.461002797, 0.225750327, -0.54016906, 0.314433366, 1.02980149, 0.0230543017, 0.205506459)),
    "hrnet_small_psa_p": (0.232092278, 1.08044115, 3.45682025,
        (1.38169467, -0.480964541, 0.682624817, -1.27973235, 0.37177667, 1.13780856, -0.601287186, -0.295167685)),
    "hrnet_w32": (-1209.42344, 3570.29724, 11064.6768,
        (2759.14722, -288.14682, -6543.31104, -2934.11426, 640.964783, 2282.15015, 1388.61853, -4724.8501)),
    "resnet50": (-0.127893499, 0.890196099, 3.48694634,
        (0.0944513604, -0.0882134885, 0.595292151, -0.0631236881, -1.17650712, 0.408603817, -1.17157674, -0.986549854)),
}


def set_golden_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter and BatchNorm buffer from a frozen numpy stream, in state-dict order."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            shape = tuple(t.shape)
            if name.endswith("running_var"):
                v = rng.uniform(0.5, 1.5, shape)
            elif name.endswith("running_mean") or name.endswith("bias"):
                v = rng.uniform(-0.2, 0.2, shape)
            elif t.dim() <= 1 or name.endswith("norm_up.weight"):  # norm scales
                v = rng.uniform(0.5, 1.5, shape)
            elif "conv_up.1" in name:  # official PSA_s LayerNorm([C/8, 1, 1]) scale
                v = rng.uniform(0.5, 1.5, shape)
            else:
                fan_in = int(np.prod(shape[1:]))
                if "deconv" in name:  # ConvTranspose2d weights are (in, out, k, k)
                    fan_in = shape[0] * shape[2] * shape[3] // 4
                v = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
            t.copy_(torch.from_numpy(v.astype(np.float32)))


def golden_input(hw: tuple[int, int], seed: int = 1) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    return torch.from_numpy(rng.standard_normal((2, 3, *hw)).astype(np.float32))


def sample_indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Fixed positions spread over batch, joints and the heatmap (corners included)."""
    n, k, h, w = shape
    picks = [(0, 0, 0, 0), (n - 1, k - 1, h - 1, w - 1)]
    for i in range(NUM_SAMPLES - 2):
        picks.append((i % n, (3 * i + 1) % k, (5 * i + 2) % h, (7 * i + 3) % w))
    return picks


def forward(name: str) -> torch.Tensor:
    arch, psa, variant, placement, hw = CASES[name]
    model = create_model(arch, num_joints=NUM_JOINTS, psa=psa, psa_variant=variant, psa_placement=placement)
    set_golden_weights(model)
    model.eval()
    with torch.no_grad():
        out = model(golden_input(hw)).double()
    assert out.shape == (2, NUM_JOINTS, hw[0] // 4, hw[1] // 4)
    return out


def summarize(out: torch.Tensor) -> tuple[float, float, float, tuple[float, ...]]:
    samples = tuple(float(out[i]) for i in sample_indices(tuple(out.shape)))
    return float(out.mean()), float(out.std()), float(out.abs().max()), samples


def test_every_case_has_golden_values():
    assert set(GOLDEN) == set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_matches_golden(name):
    mean, std, peak, samples = summarize(forward(name))
    g_mean, g_std, g_peak, g_samples = GOLDEN[name]
    # Float noise between CPUs (summation order in the convolutions) stays far below 1e-4
    # relative; the mean is compared on the scale of the std since it can be near 0.
    assert std == pytest.approx(g_std, rel=1e-4)
    assert peak == pytest.approx(g_peak, rel=1e-4)
    assert abs(mean - g_mean) <= 1e-4 * g_std
    np.testing.assert_allclose(samples, g_samples, rtol=0, atol=1e-4 * g_std)


def test_golden_values_are_sensitive():
    # The statistics mean something only if the outputs vary: no dead network, no constant map.
    for name, (_, std, peak, samples) in GOLDEN.items():
        assert std > 1e-3 and peak > std, name
        assert len(set(samples)) == NUM_SAMPLES, name


if __name__ == "__main__":
    torch.set_printoptions(precision=10)
    for case in CASES:
        m, s, p, smp = summarize(forward(case))
        vals = ", ".join(f"{v:.9g}" for v in smp)
        print(f'    "{case}": ({m:.9g}, {s:.9g}, {p:.9g},\n        ({vals})),')
