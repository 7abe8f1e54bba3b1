"""Fixtures of the streaming tests: small real datasets and local HTTP servers (see tests/support)."""
from __future__ import annotations

from types import ModuleType

import pytest

from support import dsutil as _dsutil
from support import httpserver as _httpserver


@pytest.fixture(scope="session")
def dsutil() -> ModuleType:
    """The dataset builder module (build_dataset, truncate_object, WNIDS, DOGS, CATS, FISH)."""
    return _dsutil


@pytest.fixture(scope="session")
def httpserver() -> ModuleType:
    """The local HTTP server module (serve(folder, flaky=...))."""
    return _httpserver


@pytest.fixture(scope="session")
def small_ds(tmp_path_factory: pytest.TempPathFactory):
    """60 samples in 6 shards of 10, 7 classes mixed across shards (read-only: do not modify)."""
    return _dsutil.build_dataset(str(tmp_path_factory.mktemp("small") / "ds"), 60, 10)
