"""Fixtures of the hierarchy tests."""
from __future__ import annotations

from types import ModuleType

import pytest
from support import hierarchy_reference


@pytest.fixture(scope="session")
def ref() -> ModuleType:
    """Reference implementations: ref_multi_hot, ref_distance, ref_soft_labels, ref_levels, ref_hxe."""
    return hierarchy_reference
