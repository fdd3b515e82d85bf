"""Each named spec has its factory function, and create_model(name) builds what the function builds."""

import pytest
import torch

from pose.models import ARCHS, HRNET_SPECS, RESNET_SPECS, create_model, factories


def test_one_factory_per_spec():
    assert sorted(ARCHS) == sorted({**RESNET_SPECS, **HRNET_SPECS})
    for name, fn in ARCHS.items():
        assert fn is getattr(factories, name) and fn.__name__ == name


@pytest.mark.parametrize("name", ["resnet_tiny", "hrnet_tiny"])
def test_factory_equals_create_model(name):
    torch.manual_seed(0)
    direct = getattr(factories, name)(num_joints=5, psa="parallel")
    torch.manual_seed(0)
    named = create_model(name, num_joints=5, psa="parallel")
    assert direct.spec == named.spec == {**RESNET_SPECS, **HRNET_SPECS}[name]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(direct.eval()(x), named.eval()(x))
    assert direct(x).shape == (1, 5, 16, 16)
