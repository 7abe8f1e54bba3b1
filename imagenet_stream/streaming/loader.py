"""``ResumableLoader``: a DataLoader over an ``ImageNetStream`` that counts what it hands out, so a
checkpoint needs no sample count from the training loop.

``ImageNetStream.state_dict(samples_seen=n)`` wants ``n`` = the samples this rank consumed since the
current pass began (after a resume: since the resume point). A loop that keeps its own counter from
the epoch's start would double-count the resumed prefix; this wrapper counts the batches it yields
to the loop, so ``loader.state_dict()`` is always right, in a resumed run of a resumed run too.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader

from imagenet_stream.streaming.loader_batch import loader_batch_size


class ResumableLoader:
    """``DataLoader(dataset, batch_size=..., **kwargs)`` (the stream's batch size by default; None for a
    stream with ``batched=True``, which batches itself) plus ``state_dict()`` /
    ``load_state_dict()`` of the epoch's progress (as far as batches reached the loop)."""

    def __init__(self, dataset: Any, **loader_kwargs: Any) -> None:
        batch_size = loader_batch_size(dataset, loader_kwargs.pop("batch_size", None))
        self.dataset = dataset
        self.loader = DataLoader(dataset, batch_size=batch_size, **loader_kwargs)
        self.samples_seen = 0  # handed to the loop since the current pass began

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.samples_seen = 0
        for batch in self.loader:
            self.samples_seen += batch_samples(batch)
            yield batch

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        self.samples_seen = 0

    def state_dict(self) -> dict[str, Any]:
        """The dataset's resume state after the batches yielded so far in this pass."""
        return self.dataset.state_dict(samples_seen=self.samples_seen)

    def load_state_dict(self, state: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Resume (any world, any workers); the next pass starts at the saved point."""
        self.dataset.load_state_dict(state)
        self.samples_seen = 0


def batch_samples(batch: Any) -> int:
    """Samples in a collated batch ``(images, targets[, keys])`` or a list of samples."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and hasattr(batch[1], "__len__"):
        return len(batch[1])
    return len(batch)


__all__ = ["ResumableLoader"]
