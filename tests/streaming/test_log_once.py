"""The library's INFO lines appear once per run, not once per DataLoader worker (issue 17)."""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
from torch.utils.data import DataLoader
from imagenet_stream.streaming import ImageNetStream
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
ds = ImageNetStream(sys.argv[1], size=32, batch_size=4)
n = sum(len(t) for _, t in DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=sys.argv[2]))
print(n)
"""


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_the_decoder_line_is_logged_once_whatever_the_workers(small_ds, context) -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT, small_ds.url, context], capture_output=True, text=True,
                         timeout=240, check=True)
    assert run.stdout.strip() == "60"
    assert run.stderr.count("JPEG crops decode with:") == 1, run.stderr
