"""Fixtures of the streaming tests: small real datasets (see dsutil.py) and local HTTP servers.

The suite runs with ``--import-mode=importlib``, so helper modules are loaded here by path and
handed to tests as fixtures (``dsutil``, ``httpserver``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    module_name = f"_streaming_tests_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses need the module registered while executing
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dsutil() -> ModuleType:
    """The dataset builder module (build_dataset, truncate_object, WNIDS, DOGS, CATS, FISH)."""
    return _load("dsutil")


@pytest.fixture(scope="session")
def httpserver() -> ModuleType:
    """The local HTTP server module (serve(folder, flaky=...))."""
    return _load("httpserver")


@pytest.fixture(scope="session")
def small_ds(dsutil: ModuleType, tmp_path_factory: pytest.TempPathFactory):
    """60 samples in 6 shards of 10, 7 classes mixed across shards (read-only: do not modify)."""
    return dsutil.build_dataset(str(tmp_path_factory.mktemp("small") / "ds"), 60, 10)
