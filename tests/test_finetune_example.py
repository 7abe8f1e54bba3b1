"""examples/finetune_hosted.py end to end: demo shards served by a local HTTP server, a few CPU steps."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from types import ModuleType

import pytest
from support.httpserver import serve

from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.sharding.demo_tree import make_demo_tree

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_hosted.py"
FINAL = re.compile(r"^top-1 (\S+)  top-5 (\S+)  mistake severity (\S+)  hierarchical distance@5 (\S+)$", re.M)


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("finetune_hosted_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    tree = make_demo_tree(root / "tree", images_per_class=2, seed=0)
    shard([str(tree.root)], ShardOptions(out=str(root / "shards"), shard_size=8, workers=0, name="demo"))
    return root / "shards"


@pytest.mark.parametrize("loss", ["soft", "hxe", "semantic"])
def test_finetune_over_http(example: ModuleType, demo_shards: Path, loss: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with serve(demo_shards) as (url, _):
        code = example.main([url, "--loss", loss, "--steps", "3", "--batch-size", "8", "--size", "32",
                             "--width", "8", "--eval-batches", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "21841 classes (in21k)" in out  # the demo's classes live in the fall11 space
    steps = [float(v) for v in re.findall(r"^step +\d+/3 +epoch \d+ +loss (\S+)$", out, flags=re.M)]
    assert len(steps) == 3 and all(math.isfinite(v) for v in steps)
    final = FINAL.search(out)
    assert final is not None, out
    top1, top5, severity, hdist = (float(v) for v in final.groups())
    assert 0.0 <= top1 <= top5 <= 1.0
    assert math.isnan(severity) or severity > 0 and top1 < 1.0
    assert hdist >= 0.0


def test_finetune_linear_head_on_a_class_subtree(example: ModuleType, demo_shards: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with serve(demo_shards) as (url, _):
        code = example.main([url, "--classes", "n02084071", "--linear-head", "--steps", "2",
                             "--batch-size", "4",
                             "--size", "32", "--width", "8", "--eval-batches", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "190 classes (custom:dataset)" in out  # the in21k classes under dog, four with demo images
    assert FINAL.search(out), out


def test_finetune_from_s3(example: ModuleType, demo_shards: Path, s3_bucket: str, s3_options: dict,
                          s3_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    import s3fs

    s3fs.S3FileSystem(**s3_options).put(str(demo_shards), f"{s3_bucket}/demo", recursive=True)
    code = example.main([f"s3://{s3_bucket}/demo", "--endpoint-url", s3_endpoint, "--loss", "hxe",
                         "--steps", "2",
                         "--batch-size", "8", "--size", "32", "--width", "8", "--eval-batches", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    steps = [float(v) for v in re.findall(r"^step +\d+/2 +epoch \d+ +loss (\S+)$", out, flags=re.M)]
    assert len(steps) == 2 and all(math.isfinite(v) for v in steps)
    assert FINAL.search(out), out


def test_rejects_bad_arguments(example: ModuleType) -> None:
    with pytest.raises(SystemExit):
        example.main(["http://127.0.0.1:9", "--steps", "0"])
