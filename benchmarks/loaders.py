"""The contenders: each builds a DataLoader yielding ``(uint8 [B, 3, 224, 224], int64 [B])`` batches.

The transform is the same for all: RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3),
bilinear, antialiased) + horizontal flip (p=0.5) -> uint8 CHW. ImageNetStream applies it to the
JPEG bytes (our ``TrainTransform``: crop chosen from the header, draft decode); the stock loaders
receive a decoded PIL image and apply :func:`pil_train`, torchvision's
``RandomResizedCrop + RandomHorizontalFlip + PILToTensor`` written out with PIL (torchvision is
not installed here; the crop parameters come from the same ``random_resized_crop_params``).

A contender is described by a JSON-able ``spec`` dict, so that :mod:`measure` can build it in a
fresh process: ``kind`` (``ours`` | ``webdataset`` | ``folder`` | ``litdata`` | ``mosaic``),
``workers``, ``batch_size`` and the kind's own keys (documented on each builder). The peers
(``litdata``, ``mosaic``) are built by :mod:`peers` and run in their own venv (``.venv-peers``).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from process_rng import process_rng
from torch.utils.data import DataLoader, Dataset

from imagenet_stream.streaming.decoding.transforms import random_resized_crop_params

SIZE = 224
WDS_SHUFFLE = 1000  # the sample shuffle buffer of webdataset's documented examples
OPTIONAL = {"litdata": "litdata", "mosaic": "streaming"}  # contender -> module it needs
# The libraries each contender imports, imported by measure.py before its clock starts (timed apart:
# ``import streaming`` alone takes seconds, it imports transformers and torchvision).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "ours": ("imagenet_stream.streaming",),
    "webdataset": ("webdataset",),
    "folder": (),
    "litdata": ("litdata", "torchvision.transforms"),
    "mosaic": ("streaming", "torchvision.transforms"),
}


def pil_train(im: Image.Image) -> torch.Tensor:
    """RandomResizedCrop(224) + flip + PILToTensor on a decoded RGB image (torchvision's stock path)."""
    rng = process_rng()
    left, top, w, h = random_resized_crop_params(im.width, im.height, rng)
    im = im.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def identity(x: Any) -> Any:
    return x


class FolderDataset(Dataset):
    """torchvision ``ImageFolder``'s behaviour: ``pil_loader`` (open + ``convert("RGB")``), then transform.

    ``samples`` are ``(path, class_index)``; class indices follow the sorted wnids, as ImageFolder's.
    """

    def __init__(self, samples: list[tuple[str, int]], transform: Callable[[Image.Image], Any]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        with open(path, "rb") as f:
            im = Image.open(f).convert("RGB")
        return self.transform(im), target


def _loader(dataset: Any, spec: dict[str, Any], **kwargs: Any) -> DataLoader:
    workers = int(spec["workers"])
    batched = spec.get("options", {}).get("batched", False)  # the stream yields whole batches itself
    return DataLoader(dataset, batch_size=None if batched else int(spec["batch_size"]), num_workers=workers,
                      persistent_workers=workers > 0, **kwargs)


def build_ours(spec: dict[str, Any]) -> tuple[DataLoader, Callable[[int], None]]:
    """``url`` (dataset root), ``storage_options`` (optional), ``options`` (extra ImageNetStream kwargs)."""
    from imagenet_stream.streaming import ImageNetStream

    ds = ImageNetStream(spec["url"], shuffle=True, seed=0, transform="train", size=SIZE,
                        batch_size=int(spec["batch_size"]), storage_options=spec.get("storage_options"),
                        **spec.get("options", {}))
    return _loader(ds, spec), ds.set_epoch


def build_webdataset(spec: dict[str, Any]) -> tuple[DataLoader, Callable[[int], None]]:
    """``shards``: local tar paths. The stock pipeline of webdataset's README."""
    import webdataset as wds

    urls = list(spec["shards"])
    ds = (wds.WebDataset(urls, shardshuffle=len(urls), seed=0, empty_check=False)
          .shuffle(WDS_SHUFFLE).decode("pil").to_tuple("jpg", "cls").map_tuple(pil_train, identity))
    return _loader(ds, spec), lambda epoch: None


def build_folder(spec: dict[str, Any]) -> tuple[DataLoader, Callable[[int], None]]:
    """``paths`` and ``wnids`` (same order): an ImageFolder-style map dataset, shuffled by the sampler."""
    classes = {w: i for i, w in enumerate(sorted(set(spec["wnids"])))}
    samples = [(p, classes[w]) for p, w in zip(spec["paths"], spec["wnids"])]
    return _loader(FolderDataset(samples, pil_train), spec, shuffle=True), lambda epoch: None


def build_peer(spec: dict[str, Any]) -> tuple[DataLoader, Callable[[int], None]]:
    """``litdata`` | ``mosaic``: see :mod:`peers` (their own venv, their own conversion of the images)."""
    import peers

    return peers.BUILDERS[spec["kind"]](spec)


BUILDERS: dict[str, Callable[[dict[str, Any]], tuple[DataLoader, Callable[[int], None]]]] = {
    "ours": build_ours,
    "webdataset": build_webdataset,
    "folder": build_folder,
    "litdata": build_peer,
    "mosaic": build_peer,
}


def available(kind: str) -> bool:
    """Whether the optional library a contender needs is installed."""
    module = OPTIONAL.get(kind)
    return module is None or importlib.util.find_spec(module) is not None
