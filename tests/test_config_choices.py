"""The config's valid choices are the factory tables' names: a name added to (or removed from) a
table without the config, or the other way round, fails here instead of at run time."""

import pytest

from pose.config import CHOICES
from pose.data.codecs import CODECS, REFINES
from pose.engine.coco_eval import BACKENDS
from pose.engine.optim import OPTIMIZERS, SCHEDULES
from pose.models.layers import PSA_MODES, PSA_PLACEMENTS
from pose.models.psa import VARIANTS
from pose.runtime import AMP_DTYPES, CPU_MALLOC_CHOICES

TABLES = {
    "model.psa": PSA_MODES,
    "model.psa_variant": VARIANTS,
    "model.psa_placement": PSA_PLACEMENTS,
    "data.codec": tuple(CODECS),
    "train.optimizer": OPTIMIZERS,
    "train.lr_schedule": SCHEDULES,
    "train.amp": (*AMP_DTYPES, "auto"),
    "test.refine": REFINES,
    "test.eval_backend": BACKENDS,
    "test.amp": (*AMP_DTYPES, "auto"),
    "cpu_malloc": CPU_MALLOC_CHOICES,
}


@pytest.mark.parametrize("key", sorted(TABLES))
def test_choices_are_the_factory_tables(key):
    assert tuple(CHOICES[key]) == tuple(TABLES[key])
