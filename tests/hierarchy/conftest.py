"""Fixtures of the hierarchy tests.

The suite runs with ``--import-mode=importlib``, so the pure-Python reference implementations in
``_reference.py`` are loaded here by path and handed to tests as the ``ref`` fixture.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    module_name = f"_hierarchy_tests{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ref() -> ModuleType:
    """Reference implementations: ref_multi_hot, ref_distance, ref_soft_labels, ref_levels, ref_hxe."""
    return _load("_reference")
