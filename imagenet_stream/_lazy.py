"""Lazy package exports: ``name -> module`` tables whose modules are imported on first use.

A package's ``__init__`` maps its public names to the modules that define them, so importing the
package costs nothing (the sharder's workers never import torch through ``import imagenet_stream``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that returns ``exports[name]``'s attribute ``name``; a name that is the
    last component of its module's name and not an attribute of it is the module itself (the
    ``losses`` module of ``hierarchy``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = import_module(module)
        if module.rsplit(".", 1)[-1] == name and not hasattr(loaded, name):
            return loaded
        return getattr(loaded, name)

    return __getattr__


__all__ = ["lazy_exports"]
