"""One ``np.random.Generator`` per process for the benchmark's stock transforms (forked DataLoader
workers get their own stream). Its own module so that ``loaders`` and ``peers`` share it without
importing each other."""
from __future__ import annotations

import os

import numpy as np

_PID = -1
_RNG: np.random.Generator | None = None


def process_rng() -> np.random.Generator:
    """This process's generator, seeded from its pid and the OS on first use in each process."""
    global _PID, _RNG
    if _PID != os.getpid() or _RNG is None:
        _PID = os.getpid()
        _RNG = np.random.default_rng([os.getpid(), int.from_bytes(os.urandom(4), "little")])
    return _RNG
