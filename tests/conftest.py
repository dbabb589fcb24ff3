"""Shared pytest configuration."""

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

#: ../shared/instances beside the repository (present in CI and on developer machines)
SHARED = Path(os.environ.get("PIPECERT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SHARED_INSTANCES = SHARED / "instances"


@pytest.fixture(scope="session")
def shared_instances() -> Path:
    """Path of ../shared/instances; the test fails (not skips) if it is missing."""
    assert SHARED_INSTANCES.is_dir(), (
        f"{SHARED_INSTANCES} not found: clone the repository next to shared/ or set "
        "PIPECERT_SHARED"
    )
    return SHARED_INSTANCES
