"""The package's public surface: lazy top-level exports, version, CLI entry point."""
from __future__ import annotations

import subprocess
import sys

import pytest

import imagenet_stream


def test_top_level_exports_resolve() -> None:
    for name in imagenet_stream.__all__:
        assert getattr(imagenet_stream, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(imagenet_stream, "no_such_name")


def test_import_is_light() -> None:
    """The sharder imports the package: importing it must not pull in torch."""
    code = "import sys, imagenet_stream, imagenet_stream.sharding.coordinator; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "imagenet_stream.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and imagenet_stream.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "imagenet_stream.cli", "--help"], capture_output=True, text=True)
    for command in ("shard", "inspect", "demo", "bench"):
        assert command in out.stdout
