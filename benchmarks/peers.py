"""The peers: LitData and MosaicML streaming, each on its own conversion of the benchmark's JPEG bytes.

This module runs in the peers' venv (``.venv-peers``, made by ``make bench-peers``: torch 2.14.1 +
torchvision 0.29.1 + litdata + mosaicml-streaming, pinned in ``benchmarks/peers-constraints.txt``),
never in the main one; ``benchmarks/run.py`` launches it there and merges what it prints::

    python benchmarks/peers.py info               # versions (JSON)
    python benchmarks/peers.py convert SPEC.json  # both conversions of the same files, timed (JSON)
    python benchmarks/peers.py verify SPEC.json   # every sample exactly once per epoch, right label/bytes

The contenders themselves go through ``benchmarks/measure.py`` (kinds ``litdata`` and ``mosaic``, whose
builders live here) like every other one. Each peer stores the same three fields per image: the
JPEG file's bytes untouched (``bytes`` columns, no re-encode, no pickling), the ImageFolder-style
class index (sorted wnids) and the image's position in the list; and each reads them back with
its own ``StreamingDataset``, shuffled, through a DataLoader with the harness's batch size and
workers. The ``transform`` key of a spec picks what is applied to the bytes:

* ``stock``: what their users write: ``PIL.Image.open(...).convert("RGB")``, then torchvision's
  ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip()`` + ``PILToTensor()`` (uint8 CHW);
* ``ours``: ``imagenet_stream.streaming.decoding.transforms.TrainTransform`` on the bytes, the transform
  ImageNetStream applies, so the row compares the loaders alone;
* ``verify``: no decode: ``[position, crc32(bytes)]``, for :func:`verify`.

Every reading run gets a fresh scratch folder (``scratch``, made and removed by run.py): LitData's
cache dir, and MosaicML's ``local`` dir (a folder of hard links to the MDS shards, read in place with
``remote=None``: a unique path per run, since Mosaic names its shared memory after ``local``).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

CHUNK_BYTES = 1 << 26  # 64 MiB: LitData's README uses chunk_bytes="64MB"; MDSWriter's size_limit default
LITDATA_DIR, MOSAIC_DIR = "litdata", "mds"

os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")  # else StreamingDataset() asks PyPI for news


# --------------------------------------------------------------------------- the samples
def _sample(item: tuple[str, int, int]) -> dict[str, Any]:
    """One image as both peers store it: its file's bytes untouched, class index, position."""
    path, label, index = item
    return {"index": int(index), "label": int(label), "image": Path(path).read_bytes()}


def labels_of(wnids: list[str]) -> list[int]:
    """ImageFolder's class indices: positions in the sorted set of wnids."""
    classes = {w: i for i, w in enumerate(sorted(set(wnids)))}
    return [classes[w] for w in wnids]


# --------------------------------------------------------------------------- conversions
def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def convert_litdata(items: list[tuple[str, int, int]], out: Path, workers: int) -> dict[str, Any]:
    """``litdata.optimize`` over the files with ``workers`` processes into ``out`` (replaced)."""
    import litdata

    _fresh(out)
    start = time.perf_counter()
    litdata.optimize(fn=_sample, inputs=items, output_dir=str(out), chunk_bytes=CHUNK_BYTES,
                     num_workers=workers, verbose=False)
    seconds = time.perf_counter() - start
    files, size = _size(out)
    return {"seconds": seconds, "files": files, "bytes": size, "workers": workers}


def convert_mosaic(items: list[tuple[str, int, int]], out: Path) -> dict[str, Any]:
    """``streaming.MDSWriter`` (one process, as its docs write a dataset) into ``out`` (replaced)."""
    from streaming import MDSWriter

    _fresh(out)
    start = time.perf_counter()
    columns = {"index": "int", "label": "int", "image": "bytes"}
    with MDSWriter(out=str(out), columns=columns, size_limit=CHUNK_BYTES, progress_bar=False) as writer:
        for item in items:
            writer.write(_sample(item))
    seconds = time.perf_counter() - start
    files, size = _size(out)
    return {"seconds": seconds, "files": files, "bytes": size, "workers": 1}


def convert(spec: dict[str, Any]) -> dict[str, Any]:
    """Spec: ``paths``, ``wnids``, ``out`` (parent folder), ``workers``, ``kinds`` (litdata, mosaic)."""
    items = [(p, label, i) for i, (p, label) in enumerate(zip(spec["paths"], labels_of(spec["wnids"])))]
    out = Path(spec["out"])
    done: dict[str, Any] = {}
    if "litdata" in spec["kinds"]:
        done["litdata"] = {"dir": str(out / LITDATA_DIR),
                           **convert_litdata(items, out / LITDATA_DIR, int(spec["workers"]))}
    if "mosaic" in spec["kinds"]:
        done["mosaic"] = {"dir": str(out / MOSAIC_DIR), **convert_mosaic(items, out / MOSAIC_DIR)}
    return done


# --------------------------------------------------------------------------- transforms
_STOCK: Any = None


def stock_transform(data: bytes) -> torch.Tensor:
    """The peers' users' path: PIL decode, torchvision RandomResizedCrop(224) + flip + PILToTensor."""
    global _STOCK
    if _STOCK is None:
        from torchvision import transforms

        _STOCK = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                     transforms.PILToTensor()])
    return _STOCK(Image.open(io.BytesIO(data)).convert("RGB"))


_OURS: Any = None


def ours_transform(data: bytes) -> torch.Tensor:
    """ImageNetStream's ``TrainTransform`` on the bytes (a per-process generator for the crop/flip)."""
    global _OURS
    if _OURS is None:
        from imagenet_stream.streaming.decoding.transforms import TrainTransform

        _OURS = TrainTransform(224)
    from process_rng import process_rng

    return _OURS(data, process_rng())


def verify_transform(data: bytes, index: int) -> torch.Tensor:
    return torch.tensor([index, zlib.crc32(data)], dtype=torch.int64)


class SampleFn:
    """A stored sample (dict) -> ``(image, label)`` with transform ``name``; picklable, for either peer."""

    def __init__(self, name: str) -> None:
        if name not in ("stock", "ours", "verify"):
            raise ValueError(f"unknown peer transform {name!r} (stock, ours, verify)")
        self.name = name

    def __call__(self, sample: dict[str, Any]) -> tuple[torch.Tensor, int]:
        data = sample["image"]
        if self.name == "stock":
            image = stock_transform(data)
        elif self.name == "ours":
            image = ours_transform(data)
        else:
            image = verify_transform(data, sample["index"])
        return image, sample["label"]


# --------------------------------------------------------------------------- builders (measure.py)
def build_litdata(spec: dict[str, Any]) -> tuple[Any, Callable[[int], None]]:
    """``data`` (optimize's output), ``scratch`` (fresh cache dir), ``transform``, ``workers``,
    ``batch_size``.

    LitData's own ``StreamingDataLoader`` (a torch DataLoader that tells the dataset its epoch).
    """
    from litdata import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(spec["data"], cache_dir=str(Path(spec["scratch"]) / "cache"), shuffle=True, seed=0,
                          transform=SampleFn(spec["transform"]))
    workers = int(spec["workers"])
    loader = StreamingDataLoader(ds, batch_size=int(spec["batch_size"]), num_workers=workers,
                                 persistent_workers=workers > 0)
    return loader, lambda epoch: None  # StreamingDataLoader counts epochs itself


def _mosaic_dataset_class() -> type:
    from streaming import StreamingDataset

    class MosaicSamples(StreamingDataset):  # type: ignore[misc]
        """Mosaic's pattern for a vision set (its own ImageNet class does this): override ``get_item``."""

        def __init__(self, *, transform: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._sample_fn = SampleFn(transform)

        def get_item(self, sample_id: int, retry: int = 7) -> Any:
            return self._sample_fn(super().get_item(sample_id, retry))

    return MosaicSamples


def mosaic_local(data: str, scratch: str) -> str:
    """A fresh ``local`` folder of hard links to the MDS files (copies where links fail): read in place,
    under a path no other run has used (Mosaic derives its shared-memory names from ``local``)."""
    local = Path(scratch) / "local"
    local.mkdir(parents=True, exist_ok=False)
    for src in Path(data).iterdir():
        if src.is_file():
            try:
                os.link(src, local / src.name)
            except OSError:
                shutil.copy2(src, local / src.name)
    return str(local)


def build_mosaic(spec: dict[str, Any]) -> tuple[Any, Callable[[int], None]]:
    """``data`` (MDSWriter's output), ``scratch``, ``transform``, ``workers``, ``batch_size``.

    A torch DataLoader over a ``StreamingDataset(local=..., remote=None, batch_size=..., shuffle=True)``;
    the dataset counts its own epochs (each ``__iter__`` is the next one).
    """
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    clean_stale_shared_memory()  # leftovers of a killed run would collide with this one's names
    local = mosaic_local(spec["data"], spec["scratch"])
    batch = int(spec["batch_size"])
    ds = _mosaic_dataset_class()(local=local, remote=None, batch_size=batch, shuffle=True, shuffle_seed=0,
                                 transform=spec["transform"])
    workers = int(spec["workers"])
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
    return loader, lambda epoch: None


BUILDERS = {"litdata": build_litdata, "mosaic": build_mosaic}


# --------------------------------------------------------------------------- correctness
def verify(spec: dict[str, Any]) -> dict[str, Any]:
    """Read ``epochs`` epochs of peer ``kind`` without decoding; every position exactly once per epoch,
    with its label and the crc32 of its source file. Spec: as a builder's plus ``paths``, ``wnids``."""
    paths, labels = spec["paths"], labels_of(spec["wnids"])
    crcs = [zlib.crc32(Path(p).read_bytes()) for p in paths]
    loader, set_epoch = BUILDERS[spec["kind"]]({**spec, "transform": "verify"})
    problems: list[str] = []
    orders: list[list[int]] = []
    for epoch in range(int(spec["epochs"])):
        set_epoch(epoch)
        seen: list[int] = []
        for ids, targets in loader:
            for (index, crc), label in zip(ids.tolist(), targets.tolist()):
                seen.append(index)
                if not 0 <= index < len(paths):
                    problems.append(f"epoch {epoch}: position {index} out of range")
                elif label != labels[index] or crc != crcs[index]:
                    problems.append(f"epoch {epoch}: position {index} has label {label} "
                                    f"(want {labels[index]}){'' if crc == crcs[index] else ', other bytes'}")
        counts = np.bincount(np.asarray(seen, dtype=np.int64), minlength=len(paths)) if seen else \
            np.zeros(len(paths), dtype=np.int64)
        missing, repeated = int((counts == 0).sum()), int((counts > 1).sum())
        if missing or repeated or len(seen) != len(paths):
            problems.append(f"epoch {epoch}: {len(seen)} samples for {len(paths)}; {missing} missing, "
                            f"{repeated} more than once")
        orders.append(seen)
    del loader
    return {"kind": spec["kind"], "samples": len(paths), "epochs": int(spec["epochs"]),
            "workers": int(spec["workers"]), "ok": not problems, "problems": problems[:10],
            "same_order_each_epoch": len(orders) > 1 and all(o == orders[0] for o in orders[1:]),
            "shuffled": bool(orders) and orders[0] != sorted(orders[0])}


# --------------------------------------------------------------------------- CLI
def info() -> dict[str, Any]:
    """Versions of the peers' stack (an import failure is reported, not raised)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"python": sys.version.split()[0]}
    for dist in ("litdata", "mosaicml-streaming", "torch", "torchvision", "pillow", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    for module in ("litdata", "streaming", "torchvision"):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - reported to the harness, which skips the peer
            out.setdefault("errors", {})[module] = f"{type(exc).__name__}: {exc}"[:300]
    import imagenet_stream

    out["imagenet_stream"] = str(Path(imagenet_stream.__file__).parent)
    return out


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    command = argv[0] if argv else ""
    if command == "info":
        result = info()
    elif command in ("convert", "verify") and len(argv) == 2:
        spec = json.loads(Path(argv[1]).read_text())
        result = convert(spec) if command == "convert" else verify(spec)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
