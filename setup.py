"""Build hook for the optional native JPEG region decoder (metadata lives in pyproject.toml).

``imagenet_stream.streaming.decoding._jpegroi`` needs libjpeg-turbo's headers (Debian: ``libjpeg-dev``) and a C
compiler; it does not link libjpeg (it uses the copy Pillow loads, found at run time). Where either is
missing the build warns and skips the extension: the package still installs and decodes with Pillow.
Set ``IMAGENET_STREAM_REQUIRE_NATIVE=1`` to make a failed build an error instead.
"""
from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError


class OptionalBuildExt(build_ext):
    """``build_ext`` that warns and builds nothing when the extension cannot be compiled.

    The extension is dropped from the build's list, so nothing (an editable install's copy into the
    source tree included) later looks for its file.
    """

    def run(self) -> None:
        try:
            super().run()
        except (PlatformError, CCompilerError, ExecError) as exc:  # no usable compiler at all
            self._skip(exc)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except (CCompilerError, CompileError, ExecError, LinkError) as exc:  # e.g. no jpeglib.h
            self._skip(exc)

    def _skip(self, exc: Exception) -> None:
        if os.environ.get("IMAGENET_STREAM_REQUIRE_NATIVE") == "1":
            raise exc
        self.extensions = []
        sys.stderr.write(
            f"WARNING: not building the native JPEG region decoder ({exc}); install libjpeg-turbo's "
            "headers (Debian/Ubuntu: apt-get install libjpeg-dev) and reinstall to enable it. "
            "Decoding falls back to Pillow.\n")


setup(
    ext_modules=[
        Extension(
            "imagenet_stream.streaming.decoding._jpegroi",
            sources=["imagenet_stream/streaming/decoding/_jpegroi.c"],
            libraries=["dl"] if sys.platform.startswith("linux") else [],
            extra_compile_args=["-O3"],  # planar()'s byte shuffles vectorise at -O3 (4x faster than -O2 here)
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
