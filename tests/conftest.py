"""Fixtures shared by the training tests."""

import pytest


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A tiny generated COCO-format dataset (6 training and 2 validation images), read-only."""
    synthetic = pytest.importorskip("pose.data.synthetic")
    root = tmp_path_factory.mktemp("train_data") / "synthetic"
    return synthetic.generate_synthetic_coco(root, seed=7, num_train_images=6, num_val_images=2,
                                             image_size=(160, 120), max_people=2)
