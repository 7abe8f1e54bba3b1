"""Smoke run of the side-by-side benchmark (``benchmarks/run.py --quick``): it runs and reports.

No timing is asserted: only that every contender was measured, the ratios were computed, and the
results file was written with its run section.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_reports(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# kept by hand\n\nnotes above the run\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--work", str(tmp_path / "work"),
         "--results", str(results)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for contender in ("ImageNetStream local", "ImageNetStream S3", "webdataset stock", "ImageFolder-style"):
        rows = [line for line in out.splitlines() if line.startswith(f"| {contender} |")]
        assert rows, f"no table row for {contender}:\n{out}"
        assert "skipped" not in rows[0]
    for skipped in ("LitData", "MosaicML streaming"):
        assert f"| {skipped} |" in out
    assert "× the bare limit" in out and "vs webdataset stock" in out and "S3 / local" in out
    assert "limit per core" in out and "sharder /" in out
    text = results.read_text()
    assert text.startswith("# kept by hand\n\nnotes above the run\n")
    assert "<!-- run:begin -->" in text and "<!-- run:end -->" in text
    assert "| ImageNetStream local | 2 |" in text or "| ImageNetStream local | 1 |" in text
