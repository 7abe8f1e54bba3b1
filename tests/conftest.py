"""Shared fixtures: a real S3 server (moto, 127.0.0.1, random port) and its storage options; small real
datasets and a local HTTP server (see tests/support)."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest
from support import dsutil as _dsutil
from support import httpserver as _httpserver


@pytest.fixture(autouse=True, scope="session")
def _index_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Foreign-shard indexes go to a temporary folder, never the user's ~/.cache (spawned processes inherit it)."""
    before = os.environ.get("IMAGENET_STREAM_CACHE")
    os.environ["IMAGENET_STREAM_CACHE"] = str(tmp_path_factory.mktemp("index-cache"))
    yield
    if before is None:
        os.environ.pop("IMAGENET_STREAM_CACHE", None)
    else:
        os.environ["IMAGENET_STREAM_CACHE"] = before


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 for the session; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict:
    """s3fs storage options pointing at the moto server (dummy keys)."""
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint},
            "skip_instance_cache": True}


@pytest.fixture
def s3_bucket(s3_options: dict) -> str:
    """A fresh, empty bucket; yields its name."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    name = f"test-{uuid.uuid4().hex[:10]}"
    fs.mkdir(name)  # no region_name: moto's default region
    return name


@pytest.fixture(scope="session")
def dsutil() -> ModuleType:
    """The dataset builder module (build_dataset, truncate_object, WNIDS, DOGS, CATS, FISH)."""
    return _dsutil


@pytest.fixture(scope="session")
def httpserver() -> ModuleType:
    """The local HTTP server module (serve(folder, flaky=...))."""
    return _httpserver


@pytest.fixture(scope="session")
def small_ds(tmp_path_factory: pytest.TempPathFactory):
    """60 samples in 6 shards of 10, 7 classes mixed across shards (read-only: do not modify)."""
    return _dsutil.build_dataset(str(tmp_path_factory.mktemp("small") / "ds"), 60, 10)
