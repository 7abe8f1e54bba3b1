"""How often each target class is drawn per epoch: :class:`ClassSampling` and the named modes.

``ImageNetStream(sampling=...)`` takes a name of :data:`SAMPLING_MODES`, a :class:`ClassSampling`
or a mapping of its fields; :func:`parse_sampling` turns any of them into a ``ClassSampling``,
whose :meth:`~ClassSampling.targets` gives the expected count of every class per epoch.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import ConfigError


@dataclass(frozen=True)
class ClassSampling:
    """How often each target class is drawn per epoch.

    ``balanced``: every class present equally often. ``weights``: one weight per target class (a
    class's samples are drawn in proportion to its weight over its size). ``cap`` / ``floor``: a
    class contributes ``clip(its size, floor, cap)`` samples per epoch. Class balance draws with
    replacement unless the dataset's ``replacement=False``.
    """

    balanced: bool = False
    weights: Sequence[float] | None = None
    cap: int | None = None
    floor: int | None = None

    def __post_init__(self) -> None:
        chosen = sum([self.balanced, self.weights is not None, self.cap is not None or self.floor is not None])
        if chosen != 1:
            raise ConfigError("ClassSampling takes exactly one of balanced=True, weights=..., cap/floor=...")
        for name in ("cap", "floor"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"ClassSampling {name} must be an int >= 0, got {value!r}")
        if self.cap is not None and self.floor is not None and self.floor > self.cap:
            raise ConfigError(f"ClassSampling floor ({self.floor}) is above cap ({self.cap})")

    def targets(self, class_counts: np.ndarray) -> np.ndarray:
        """Expected samples per class per epoch (float), from the eligible count of each class."""
        n = class_counts.astype(np.float64)
        present = n > 0
        if self.balanced:
            out = np.zeros_like(n)
            out[present] = n.sum() / max(1, int(present.sum()))
            return out
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != n.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
                raise ConfigError(f"ClassSampling weights: expected {len(n)} finite weights >= 0, got {w.shape}")
            mass = (w * present).sum()
            if mass <= 0:
                raise ConfigError("ClassSampling weights give every present class weight 0")
            return np.where(present, w / mass * n.sum(), 0.0)
        lo = self.floor if self.floor is not None else 0
        hi = self.cap if self.cap is not None else np.inf
        return np.where(present, np.clip(n, lo, hi), 0.0)


#: ``sampling="NAME"`` -> the :class:`ClassSampling` it stands for. A new named mode is one entry here
#: (plus, when it needs a new rule, a field and a branch of :meth:`ClassSampling.targets`).
SAMPLING_MODES: dict[str, Callable[[], ClassSampling]] = {
    "balanced": lambda: ClassSampling(balanced=True),
}


def parse_sampling(spec: object) -> ClassSampling | None:
    """``sampling=`` of the dataset: None, a mode's name, a ClassSampling or its fields as a mapping."""
    if spec is None or isinstance(spec, ClassSampling):
        return spec
    if isinstance(spec, str) and spec in SAMPLING_MODES:
        return SAMPLING_MODES[spec]()
    if isinstance(spec, Mapping):
        return ClassSampling(**dict(spec))
    names = ", ".join(repr(n) for n in sorted(SAMPLING_MODES))
    raise ConfigError(f"sampling must be None, one of {names}, a ClassSampling or a mapping of its fields, "
                      f"got {spec!r}")


__all__ = ["SAMPLING_MODES", "ClassSampling", "parse_sampling"]
