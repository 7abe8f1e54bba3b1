"""Lazy package exports: ``name -> module`` tables whose modules are imported on first use.

A package's ``__init__`` maps its public names to the modules that define them, so importing the
package costs nothing (the sharder's workers never import torch through ``import imagenet_stream``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that returns ``exports[name]``'s attribute ``name`` (a module's own
    name maps to the module itself when the table's value is that module)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = import_module(module)
        return loaded if module.rsplit(".", 1)[-1] == name else getattr(loaded, name)

    return __getattr__


__all__ = ["lazy_exports"]
