"""imagenet-stream: shard ImageNet as it is distributed, stream it exactly-once to DDP training."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
