"""Lightning: a ``LightningDataModule`` whose checkpoints hold the stream's position, so
``trainer.fit(ckpt_path=...)`` from a mid-epoch checkpoint (``ModelCheckpoint(every_n_train_steps=k)``)
streams exactly the rest of the epoch, in the same or another number of devices.

    from imagenet_stream.integrations.lightning import StreamDataModule
    data = StreamDataModule(ImageNetStream(url, batch_size=64), num_workers=8)
    trainer.fit(model, datamodule=data, ckpt_path="last")

How it counts: Lightning fetches a batch ahead of the one it trains on, so what a DataLoader has
yielded is not what the loop has consumed. The module counts batches in ``on_before_batch_transfer``,
which Lightning calls for the batch it is about to train on; its ``state_dict`` (saved by Lightning in
every checkpoint under the module's class name) is the dataset's resume state after those batches.
The training loader has no ``len``: after a resume Lightning's own batch counter includes the batches
before the checkpoint, so an epoch ends when the stream does, not at a count. The epoch comes from
``trainer.current_epoch`` at the start of each pass (``set_epoch`` is not needed).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch.utils.data import DataLoader

from imagenet_stream.streaming.loader import batch_samples
from imagenet_stream.streaming.loader_batch import loader_batch_size

try:
    from lightning.pytorch import LightningDataModule
except ImportError:  # the standalone package has the same class
    try:
        from pytorch_lightning import LightningDataModule
    except ImportError as exc:
        raise ImportError("imagenet_stream.integrations.lightning needs Lightning: "
                          "pip install 'imagenet-stream[lightning]'") from exc


class _TrainLoader:
    """The training DataLoader, setting the dataset's epoch from the trainer at each pass."""

    def __init__(self, module: StreamDataModule) -> None:
        self._module = module
        self.loader = DataLoader(module.train, batch_size=module.batch_sizes[0], **module.loader_kwargs)

    def __iter__(self) -> Iterator[Any]:
        module = self._module
        module.train.set_epoch(module.trainer.current_epoch)  # keeps a loaded resume of this epoch
        module.samples_seen = 0
        return iter(self.loader)


class StreamDataModule(LightningDataModule):
    """``train`` (and optionally ``val``) :class:`~imagenet_stream.streaming.ImageNetStream` objects;
    ``loader_kwargs`` go to both DataLoaders (``batch_size``, ``num_workers``, ``pin_memory``, ...); the
    batch size defaults to the streams' own and must agree with a stream's that is set (a stream with
    ``batched=True`` yields whole batches, and its DataLoader batches nothing)."""

    def __init__(self, train: Any, val: Any = None, **loader_kwargs: Any) -> None:
        super().__init__()
        given = loader_kwargs.pop("batch_size", None)
        self.batch_sizes = (loader_batch_size(train, given),
                            None if val is None else loader_batch_size(val, given))
        self.train, self.val, self.loader_kwargs = train, val, loader_kwargs
        self.samples_seen = 0  # consumed by the training loop since the current pass began

    def train_dataloader(self) -> _TrainLoader:
        return _TrainLoader(self)

    def val_dataloader(self) -> DataLoader | list:
        if self.val is None:
            return []
        return DataLoader(self.val, batch_size=self.batch_sizes[1], **self.loader_kwargs)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.samples_seen += batch_samples(batch)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"train": self.train.state_dict(samples_seen=self.samples_seen)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.train.load_state_dict(state["train"])
        self.samples_seen = 0


__all__ = ["StreamDataModule"]
