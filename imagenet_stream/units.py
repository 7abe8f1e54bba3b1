"""Human-readable sizes for reports and summaries."""
from __future__ import annotations


def format_size(n: float) -> str:
    """``n`` bytes as B, KiB, MiB, GiB or TiB (one decimal above bytes)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        value /= 1024
    return f"{int(n)} B"


__all__ = ["format_size"]
