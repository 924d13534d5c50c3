import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# CI runs a fixed, reproducible set of examples.
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def _restore_config():
    import sketchsel

    before = sketchsel.get_config()
    yield
    sketchsel.set_config(**before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
