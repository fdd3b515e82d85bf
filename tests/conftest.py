"""Fixtures shared by the training tests."""

import pytest
import torch


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A tiny generated COCO-format dataset (6 training and 2 validation images), read-only."""
    synthetic = pytest.importorskip("pose.data.synthetic")
    root = tmp_path_factory.mktemp("train_data") / "synthetic"
    return synthetic.generate_synthetic_coco(root, seed=7, num_train_images=6, num_val_images=2,
                                             image_size=(160, 120), max_people=2)


@pytest.fixture()
def one_thread():
    """One torch thread for the test (the machine may be shared; tiny runs are faster so)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
