"""A local S3 server for the benchmark: moto's ``ThreadedMotoServer`` on 127.0.0.1 (random port).

The dataset is uploaded with our :class:`~imagenet_stream.storage.Store`. Note that the server runs
in the harness process and takes CPU from the same cores as the loader it serves (a real S3 does
not), so the S3 figures are a pessimistic bound.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from imagenet_stream.storage import Store


class LocalS3:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(key, value)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        self.endpoint = ""

    def start(self) -> LocalS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": self.endpoint},
                "skip_instance_cache": True}

    def upload(self, folder: str) -> str:
        """Copy every file of a local dataset folder to a fresh bucket (``index.json`` last, as the sharder
        writes it); returns the ``s3://`` root."""
        url = f"s3://bench-{uuid.uuid4().hex[:8]}/dataset"
        store = Store(url, self.storage_options)
        store.fs.mkdir(url[len("s3://"):].split("/", 1)[0])
        files = [p for p in Path(folder).iterdir() if p.is_file()]
        for path in sorted(files, key=lambda p: (p.name == "index.json", p.name)):  # the manifest last
                store.put_file_atomic(path, path.name)
        return url
