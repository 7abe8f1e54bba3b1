"""URL lists, end to end against a local web server in its own process that misbehaves the ways the
web does: every URL accounted for in the status files, every recoverable image kept, link rot per
synset in the report, robots tags honoured, and a run SIGKILLed and resumed without fetching a URL
of a committed shard again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from support import webserver

from imagenet_stream.cli import main
from imagenet_stream.curation.download import Downloader, DownloadPolicy
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import Manifest, decode_meta, iter_samples
from imagenet_stream.format.download_status import read_status_rows
from imagenet_stream.sharding.sources.urllist import UrlListSource, is_url_list
from imagenet_stream.storage import Store

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")
#: behaviour -> (status, reason) every URL of it must end with
EXPECTED = {
    "ok": ("success", ""), "redirect": ("success", ""), "throttle": ("success", ""), "flaky": ("success", ""),
    "reset": ("success", ""), "missing": ("failed_to_download", "http_404"),
    "gone": ("failed_to_download", "http_410"), "slow": ("failed_to_download", "timeout"),
    "loop": ("failed_to_download", "too_many_redirects"), "big": ("failed_to_download", "too_large"),
    "noai": ("skipped_by_robots", "noai"), "noimageai": ("skipped_by_robots", "noimageai"),
    "html": ("rejected", "undecodable"), "broken": ("rejected", "truncated"),
}
#: how many URLs of each behaviour the acceptance list has (1,000; 21 % fail)
MIX = {"ok": 600, "redirect": 40, "throttle": 40, "flaky": 40, "reset": 70, "missing": 60, "gone": 20,
       "slow": 10, "loop": 20, "html": 30, "big": 20, "noai": 20, "noimageai": 10, "broken": 20}
FAST = ["--download-timeout", "1", "--download-attempts", "3", "--download-backoff", "0.1", "--per-host", "16",
        "--io-threads", "16", "--max-image-bytes", "1M"]


def url_list(path: Path, base: str, mix: dict[str, int], start: int = 0) -> dict[str, str]:
    """Write ``fall11_urls.txt``-style rows; return {key: behaviour}."""
    rows, kinds = [], {}
    n = start
    for kind, count in mix.items():
        for _ in range(count):
            wnid = WNIDS[n % len(WNIDS)]
            key = f"{wnid}_{n}"
            rows.append(f"{key}\t{base}/{kind}/{n}.jpg")
            kinds[key] = kind
            n += 1
    order = sorted(range(len(rows)), key=lambda i: (i * 7919) % len(rows))  # behaviours interleaved
    path.write_text("".join(rows[i] + "\n" for i in order))
    return kinds


def status_rows(out: Path) -> list[dict]:
    store = Store(str(out))
    return [row for name in sorted(os.listdir(out / "status")) for row in read_status_rows(store, f"status/{name}")]


def test_the_downloader_classifies_each_way_a_url_fails(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        down = Downloader(DownloadPolicy(timeout=1, attempts=4, backoff=0.05, max_backoff=2), max_bytes=1 << 20)
        for kind, (status, reason) in EXPECTED.items():
            fetched = down.fetch(f"{base}/{kind}/7.jpg")
            if status == "rejected":  # downloaded fine: verification rejects it
                assert fetched.status == "success" and fetched.data, kind
                continue
            assert (fetched.status, fetched.error) == (status, reason), kind
            if status == "success":
                assert fetched.data == webserver.image(7) and fetched.http_status == 200
        assert down.fetch("ftp://example.org/x.jpg").error == "bad_url"
        assert down.fetch("http://127.0.0.1:1/x.jpg").error == "connection_refused"
        ignoring = Downloader(DownloadPolicy(honor_robots=False, timeout=1), max_bytes=1 << 20)
        assert ignoring.fetch(f"{base}/noai/3.jpg").status == "success"
    agents = {ua for _, _, ua in webserver.requests(log)}
    assert agents and all(ua.startswith("imagenet-stream/") for ua in agents)
    by_path = Counter(path for path, _, _ in webserver.requests(log))
    assert by_path["/throttle/7.jpg"] == 2 and by_path["/flaky/7.jpg"] == 3 and by_path["/missing/7.jpg"] == 1


def test_a_list_of_1000_urls_is_accounted_for_url_by_url(tmp_path, capsys) -> None:
    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        urls = tmp_path / "fall11_urls.txt"
        kinds = url_list(urls, base, MIX)
        assert is_url_list(str(urls)) and len(kinds) == 1000
        failing = sum(n for k, n in MIX.items() if EXPECTED[k][0] != "success")
        assert failing >= 200
        out = tmp_path / "out"
        assert main(["shard", str(urls), "--out", str(out), "--classes", "in1k", "--workers", "2",
                     "--shard-size", "100", "--licence", "CC-BY", "--status-format", "jsonl", "--no-progress",
                     *FAST]) == 0
    printed = capsys.readouterr().out
    rows = status_rows(out)
    assert all(name.endswith(".jsonl") for name in os.listdir(out / "status"))
    assert sorted(r["key"] for r in rows) == sorted(kinds)  # every URL, once
    for row in rows:
        status, reason = EXPECTED[kinds[row["key"]]]
        assert (row["status"], row["reason"]) == (status, reason), row
    manifest = Manifest.load(Store(str(out)))
    recoverable = [k for k, kind in kinds.items() if EXPECTED[kind][0] == "success"]
    assert manifest.num_available == len(recoverable) == 790  # every recoverable image kept
    report = json.loads((out / "report.json").read_text())["downloads"]
    assert report["urls"] == 1000 and report["success"] == 790 and report["skipped_by_robots"] == 30
    assert report["errors"]["http_404"] == 60 and report["errors"]["timeout"] == 10
    assert set(report["per_synset"]) == set(WNIDS)  # link rot per synset
    for wnid, tally in report["per_synset"].items():
        keys = [k for k in kinds if k.startswith(wnid)]
        assert tally["total"] == len(keys) and tally["ok"] == sum(k in recoverable for k in keys)
    assert list(report["hosts"]) == ["127.0.0.1"]
    assert "downloads   790 of 1000 URLs (79.0%)" in printed and "link rot" in printed
    sample_meta = [decode_meta(m["msgpack"]) for name in sorted(out.glob("train-*.tar"))
                   for _, m in iter_samples(name.read_bytes())]
    assert len(sample_meta) == 790
    assert all(m["url"].startswith(base) and m["downloaded"].endswith("Z") and m["licence"] == "CC-BY"
               for m in sample_meta)
    assert "downloads" in manifest.extra and manifest.extra["downloads"]["success"] == 790


def test_table_lists_carry_their_columns_into_the_metadata(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        table = tmp_path / "urls.csv"
        table.write_text("key,wnid,url,licence,author,source_page\n"
                         f"a1,{WNIDS[0]},{base}/ok/1.jpg,CC0,Ann,https://example.org/p/1\n"
                         f"a2,{WNIDS[1]},{base}/ok/2.jpg,,Bob,\n")
        assert isinstance(UrlListSource(str(table)), UrlListSource)
        out = tmp_path / "out"
        assert main(["shard", str(table), "--out", str(out), "--classes", "in1k", "--licence", "research only",
                     "--no-progress", *FAST]) == 0
    metas = {k: decode_meta(m["msgpack"]) for name in out.glob("train-*.tar") for k, m in iter_samples(name.read_bytes())}
    assert metas["a1"]["licence"] == "CC0" and metas["a1"]["author"] == "Ann"
    assert metas["a1"]["source_page"] == "https://example.org/p/1"
    assert metas["a2"]["licence"] == "research only" and metas["a2"]["author"] == "Bob"


@pytest.mark.slow
def test_a_killed_url_run_resumes_without_fetching_a_committed_shard_again(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        urls = tmp_path / "urls.txt"
        kinds = url_list(urls, base, MIX)  # the acceptance list: 1,000 URLs, 21 % failing
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "imagenet_stream.cli", "shard", str(urls), "--out", str(out), "--classes", "in1k",
               "--shard-size", "50", "--no-progress", "--workers", "2", "--status-format", "parquet", *FAST]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        status = out / "status"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not status.exists() or len(os.listdir(status)) < 5):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert status.exists() and 5 <= len(os.listdir(status)) < 20, "kill it mid-run"
        markers = list((out / ".imagenet-stream" / "done").rglob("*.msgpack"))
        committed = {f"status/{m.name.replace('.msgpack', '')}" for m in markers}
        store = Store(str(out))
        committed_urls = {row["url"] for name in committed for row in read_status_rows(store, name + ".parquet")}
        before = len(webserver.requests(log))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    after = webserver.requests(log)[before:]
    refetched = {path for path, _, _ in after if f"{base}{path}" in committed_urls}
    assert committed_urls and not refetched  # a committed shard's URLs are never fetched again
    rows = status_rows(out)
    assert sorted(r["key"] for r in rows) == sorted(kinds)
    assert Manifest.load(store).num_available == 790  # every recoverable image, after the resume


def test_exclude_by_url_streams_under_two_ranks_without_them(tmp_path, capsys, monkeypatch, dsutil) -> None:
    from torch.utils.data import DataLoader

    from imagenet_stream.curation import exclude
    from imagenet_stream.streaming import ImageNetStream

    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        urls = tmp_path / "urls.txt"
        kinds = url_list(urls, base, {"ok": 44, "missing": 4})
        out = tmp_path / "v1"
        assert main(["shard", str(urls), "--out", str(out), "--classes", "in1k", "--shard-size", "10",
                     "--no-progress", *FAST]) == 0
    capsys.readouterr()
    ok = sorted(k for k, kind in kinds.items() if kind == "ok")
    listed = tmp_path / "takedown.txt"
    number = {k: int(k.rsplit("_", 1)[1]) for k in ok}
    listed.write_text("".join(f"{base}/ok/{number[k]}.jpg\ttakedown\n" for k in ok[:3])
                      + f"{base}/missing/999.jpg\n")
    v2 = tmp_path / "v2"
    assert main(["exclude", str(out), "--out", str(v2), "--urls", str(listed), "--no-progress"]) == 0
    assert "excluded 3 takedown" in capsys.readouterr().out
    lineage = Manifest.load(Store(str(v2))).extra["lineage"][-1]
    assert lineage["urls_listed"] == 4 and lineage["urls_unmatched"] == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        ds = ImageNetStream(str(v2), size=16, batch_size=4, return_keys=True, transform="eval")
        per_rank.append([k for _, _, keys in DataLoader(ds, batch_size=4, num_workers=rank) for k in keys])
    assert len(per_rank[0]) == len(per_rank[1]) == 41 // 2
    assert not set(ok[:3]) & set(per_rank[0] + per_rank[1])
    plain = dsutil.build_dataset(str(tmp_path / "plain"), 10, 5)
    with pytest.raises(ConfigError, match="not downloaded from a URL list"):
        exclude(plain.url, str(tmp_path / "x"), urls={"http://a/b": "opt_out"})


def test_inspect_shows_the_downloads_and_link_rot(tmp_path, capsys) -> None:
    log = tmp_path / "log.jsonl"
    with webserver.serve(log) as base:
        urls = tmp_path / "urls.txt"
        url_list(urls, base, {"ok": 12, "missing": 4, "noai": 2, "html": 2})
        out = tmp_path / "v1"
        assert main(["shard", str(urls), "--out", str(out), "--classes", "in1k", "--no-progress", *FAST]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "sharded   12 kept of 20 seen; rejected: undecodable 2, failed_to_download 4, skipped_by_robots 2" in shown
    assert "downloads 12 of 20 URLs (60.0%); 4 failed (http_404 4), 2 skipped by robots tags" in shown
    assert "link rot  success per synset from" in shown
