"""Credentials never reach exception texts, log lines or report.json: unit rules, then a 503 from a real
HTTP server (token in a header) and a real S3 server (moto, secret keys)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_ENV, parse_storage_options
from imagenet_stream.errors import ConfigError, StorageError
from imagenet_stream.redaction import Redactor, describe, redact
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming.reader import ShardReader
from imagenet_stream.streaming.roots import manifest_source

TOKEN = "tok-9f8e7d6c5b4a39281706"
SECRET = "sekrit-0a1b2c3d4e5f60718293"
KEY_ID = "AKIAIMAGENETSTREAMTEST"


def exception_texts(exc: BaseException | None) -> str:
    """str and repr of an exception and everything chained to it."""
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_redactor_masks_nested_option_values_and_patterns() -> None:
    options = {"key": KEY_ID, "secret": SECRET, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
               "headers": {"Authorization": f"Bearer {TOKEN}", "X-Custom": "plain-header-value"},
               "anon": False, "region_name": "us-east-1"}
    r = Redactor(options)
    text = r(f"failed with {SECRET} and {KEY_ID}, sent 'Authorization': 'Bearer {TOKEN}' and plain-header-value")
    assert SECRET not in text and KEY_ID not in text and TOKEN not in text and "plain-header-value" not in text
    assert "us-east-1" in r("region us-east-1") and "127.0.0.1" in r("http://127.0.0.1:9")
    assert TOKEN not in r(f"token {TOKEN} alone")  # the bare token too, not only "Bearer <token>"


@pytest.mark.parametrize("text,secret", [
    ("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef123&X-Amz-Credential=AKIA/x&ok=1", "abcdef123"),
    ("https://acct.blob.core.windows.net/c/b?sv=2020&sig=Zm9vYmFy%3D&se=2030", "Zm9vYmFy"),
    ("https://user:hunter2pass@host.example/path", "hunter2pass"),
    ("headers=<CIMultiDict('Authorization': 'Bearer abc.def.ghi')>", "abc.def.ghi"),
    ("x-amz-security-token: FQoGZXIvYXdzEXAMPLE", "FQoGZXIvYXdzEXAMPLE"),
])
def test_patterns_are_masked_without_knowing_the_secret(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "ok=1" in redact(text) or "ok=1" not in text  # ordinary query parameters stay


def test_describe_uses_str_not_repr() -> None:
    class Leaky(Exception):
        def __repr__(self) -> str:
            return f"Leaky(headers={{'Authorization': '{TOKEN}'}})"

    assert describe(Leaky("status 503")) == "Leaky: status 503"


def test_a_503_with_a_bearer_token_never_shows_it(small_ds, httpserver, caplog) -> None:
    options = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    caplog.set_level(logging.DEBUG)
    with httpserver.serve(small_ds.url, fail="train-000002.tar") as (base, _):
        store = Store(base, options, retry=RetryPolicy(attempts=2, backoff=0.01))
        with pytest.raises(StorageError) as direct:
            store.read("train-000002.tar")
        reader = ShardReader(store, manifest_source(store).shards)
        with pytest.raises(StorageError, match="train-000002.tar") as streamed:
            list(reader.read([(np.array([2]), np.array([0]))]))
    for info in (direct, streamed):
        text = exception_texts(info.value)
        assert "503" in text or "Service Unavailable" in text or "failed after" in text
        assert TOKEN not in text
    assert TOKEN not in caplog.text


def test_s3_secrets_stay_out_of_errors_logs_and_the_report(s3_endpoint, s3_bucket, tmp_path, caplog) -> None:
    from imagenet_stream.sharding.coordinator import ShardOptions, shard
    from imagenet_stream.synthetic import make_jpeg

    options = {"key": KEY_ID, "secret": SECRET, "client_kwargs": {"endpoint_url": s3_endpoint},
               "skip_instance_cache": True}
    caplog.set_level(logging.DEBUG)
    tree = tmp_path / "tree" / "n01440764"
    tree.mkdir(parents=True)
    for i in range(3):
        (tree / f"n01440764_{i}.JPEG").write_bytes(make_jpeg(64, 48, seed=i))
    (tree / "n01440764_9.JPEG").write_bytes(b"<html>503 Service Unavailable</html>")
    out = f"s3://{s3_bucket}/ds"
    shard([str(tmp_path / "tree")], ShardOptions(out=out, storage_options=options, workers=0))
    store = Store(out, options)
    report = store.read("report.json").decode()
    assert json.loads(report)["kept"] == 3
    for what in (lambda: Store(f"s3://no-such-bucket-{s3_bucket}/x", options).read("index.json"),
                 lambda: store.read("missing.tar"),
                 lambda: Store(out, {**options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}},
                               retry=RetryPolicy(attempts=1)).read("index.json")):
        with pytest.raises(OSError) as info:
            what()
        assert SECRET not in exception_texts(info.value) and KEY_ID not in exception_texts(info.value)
    for text in (report, repr(store)):
        assert SECRET not in text and KEY_ID not in text
    assert SECRET not in caplog.text  # in no logger's lines (botocore's DEBUG lines show the key id: not ours)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("imagenet_stream"))
    assert ours and KEY_ID not in ours


def test_storage_options_from_a_file_or_the_environment(tmp_path, monkeypatch) -> None:
    path = tmp_path / "opts.json"
    path.write_text(json.dumps({"key": KEY_ID, "secret": SECRET}))
    assert parse_storage_options(f"@{path}") == {"key": KEY_ID, "secret": SECRET}
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, f"@{path}")
    assert parse_storage_options(None) == {"key": KEY_ID, "secret": SECRET}
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, json.dumps({"anon": True}))
    assert parse_storage_options(None) == {"anon": True}
    assert parse_storage_options('{"anon": false}') == {"anon": False}  # the flag wins over the environment
    monkeypatch.delenv(STORAGE_OPTIONS_ENV)
    assert parse_storage_options(None) is None
    path.write_text('{"secret": "' + SECRET + '",')  # broken JSON: the error never echoes the text
    with pytest.raises(ConfigError) as info:
        parse_storage_options(f"@{path}")
    assert SECRET not in str(info.value)
