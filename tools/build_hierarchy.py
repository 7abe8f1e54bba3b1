#!/usr/bin/env python3
"""Build the WordNet 3.0 hierarchy package data of ``imagenet_stream.hierarchy``.

Maintainer script: users and CI never need WordNet or timm, they load the committed output.

    python tools/build_hierarchy.py --wordnet /usr/share/wordnet/data.noun \\
        --timm-wheel /tmp/timm-wheel/timm-1.0.31-py3-none-any.whl --out imagenet_stream/hierarchy/data/

Inputs:
  * WordNet 3.0 ``data.noun`` (Debian ``wordnet-base``). A synset's wnid is ``n`` + the 8-digit byte
    offset of its line; its parents are its ``@`` (hypernym) and ``@i`` (instance hypernym) pointers
    to nouns; its name is its lemmas joined by ", " with underscores read as spaces.
  * timm's wheel, for ``timm/data/_info/imagenet22k_synsets.txt`` (fall11's 21,841 sorted wnids)
    and ``imagenet_synsets.txt`` (ILSVRC-2012's 1,000 in standard order), plus the class orders of
    pretrained heads (:data:`NAMED_MEMBERS`: ImageNet-21K-P from fall11 and winter21, ImageNet-12k,
    Google's 21,843 of BiT/ViT, ImageNet-A and ImageNet-R), kept as named spaces, in their order.

Output: ``wordnet.msgpack.gz`` (see ``imagenet_stream/hierarchy/graph.py`` for the layout), holding
every synset of those lists and all their ancestors up to ``n00001740`` (entity). The output is
deterministic: the same inputs give the same bytes (gzip mtime 0, no file name, sorted nodes).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import msgpack

FORMAT = 1
DATA_NAME = "wordnet.msgpack.gz"
ROOT = "n00001740"
IN21K_MEMBER = "timm/data/_info/imagenet22k_synsets.txt"
IN1K_MEMBER = "timm/data/_info/imagenet_synsets.txt"
PARENT_POINTERS = ("@", "@i")
#: Named class spaces (the orders of pretrained heads) and their lists in timm's wheel.
NAMED_MEMBERS = {
    "in21k-p": "timm/data/_info/imagenet21k_miil_synsets.txt",       # MIIL ImageNet-21K-P, fall11: 11,221
    "in21k-p-w21": "timm/data/_info/imagenet21k_miil_w21_synsets.txt",  # ... from winter21: 10,450
    "in12k": "timm/data/_info/imagenet12k_synsets.txt",              # timm's ImageNet-12k: 11,821
    "in21k-goog": "timm/data/_info/imagenet21k_goog_synsets.txt",    # Google BiT/ViT in21k heads: 21,843
    "imagenet-a": "timm/data/_info/imagenet_a_synsets.txt",          # ImageNet-A's 200 (in1k order)
    "imagenet-r": "timm/data/_info/imagenet_r_synsets.txt",          # ImageNet-R's 200 (in1k order)
}
_WNID_RE = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class Synset:
    wnid: str
    name: str
    parents: tuple[str, ...]  # sorted


def parse_data_noun(raw: bytes) -> dict[str, Synset]:
    """Every noun synset of a WordNet ``data.noun`` file, keyed by wnid.

    Raises ValueError when a line's stated offset is not its byte offset or a line is malformed.
    """
    synsets: dict[str, Synset] = {}
    offset = 0
    for line in raw.splitlines(keepends=True):
        here, offset = offset, offset + len(line)
        if line.startswith(b"  "):  # licence header
            continue
        text = line.decode("utf-8").rstrip("\n")
        fields = text.split(" | ", 1)[0].split()
        if int(fields[0]) != here:
            raise ValueError(f"data.noun line at byte {here} states offset {fields[0]}")
        if fields[2] != "n":
            raise ValueError(f"data.noun line at byte {here} has synset type {fields[2]!r}, not 'n'")
        w_cnt = int(fields[3], 16)
        words = [fields[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
        p = 4 + 2 * w_cnt
        p_cnt = int(fields[p])
        parents = set()
        for i in range(p_cnt):
            symbol, target, pos, _ = fields[p + 1 + 4 * i: p + 5 + 4 * i]
            if symbol in PARENT_POINTERS and pos == "n":
                parents.add("n" + target)
        wnid = f"n{here:08d}"
        synsets[wnid] = Synset(wnid, ", ".join(words), tuple(sorted(parents)))
    return synsets


def read_wnid_list(text: str, what: str) -> list[str]:
    """One wnid per line; raises ValueError on malformed lines or duplicates."""
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    for i, wnid in enumerate(wnids):
        if not _WNID_RE.match(wnid):
            raise ValueError(f"{what}: malformed wnid {wnid!r} on line {i + 1}")
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{what}: duplicate wnids")
    return wnids


def read_named_lists(wheel: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({space name: wnids in head order}, {space name: sha256 of its list file})`` from timm's wheel
    (a list the wheel lacks is left out, with a warning: the cross-check tests then say so)."""
    lists, digests = {}, {}
    with zipfile.ZipFile(wheel) as zf:
        present = set(zf.namelist())
        for name, member in NAMED_MEMBERS.items():
            if member not in present:
                print(f"warning: {wheel.name} has no {member}: space {name} not built", file=sys.stderr)
                continue
            raw = zf.read(member)
            lists[name] = read_wnid_list(raw.decode("ascii"), member)
            digests[name] = hashlib.sha256(raw).hexdigest()
    return lists, digests


def read_timm_lists(wheel: Path) -> tuple[list[str], list[str], str, str]:
    """(in21k, in1k, sha256 of the in21k list file, sha256 of the in1k list file) from timm's wheel."""
    with zipfile.ZipFile(wheel) as zf:
        raw21k = zf.read(IN21K_MEMBER)
        raw1k = zf.read(IN1K_MEMBER)
    in21k = read_wnid_list(raw21k.decode("ascii"), IN21K_MEMBER)
    in1k = read_wnid_list(raw1k.decode("ascii"), IN1K_MEMBER)
    if in21k != sorted(in21k):
        raise ValueError(f"{IN21K_MEMBER} is not sorted")
    return in21k, in1k, hashlib.sha256(raw21k).hexdigest(), hashlib.sha256(raw1k).hexdigest()


def closure(synsets: dict[str, Synset], seeds: list[str]) -> list[str]:
    """The seeds and all their ancestors, sorted; raises ValueError on an unknown wnid or a second root."""
    keep: set[str] = set()
    stack = list(seeds)
    while stack:
        wnid = stack.pop()
        if wnid in keep:
            continue
        if wnid not in synsets:
            raise ValueError(f"{wnid} is not a noun synset of data.noun")
        keep.add(wnid)
        parents = synsets[wnid].parents
        if not parents and wnid != ROOT:
            raise ValueError(f"{wnid} ({synsets[wnid].name}) has no parent but is not {ROOT}")
        stack.extend(parents)
    return sorted(keep)


def _u32(values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def build_payload(data_noun: bytes, in21k: list[str], in1k: list[str], lists_sha256: dict[str, str],
                  named: dict[str, list[str]] | None = None) -> bytes:
    """The msgpack payload (uncompressed) for the given inputs."""
    synsets = parse_data_noun(data_noun)
    named = named or {}
    nodes = closure(synsets, in21k + in1k + [w for wnids in named.values() for w in wnids])
    index = {wnid: i for i, wnid in enumerate(nodes)}
    ptr = [0]
    idx: list[int] = []
    for wnid in nodes:
        idx.extend(index[p] for p in synsets[wnid].parents)
        ptr.append(len(idx))
    doc = {
        "format": FORMAT,
        "source": {
            "wordnet": "WordNet 3.0 data.noun (Princeton University)",
            "wordnet_sha256": hashlib.sha256(data_noun).hexdigest(),
            "in21k": f"timm {IN21K_MEMBER}",
            "in21k_sha256": lists_sha256["in21k"],
            "in1k": f"timm {IN1K_MEMBER}",
            "in1k_sha256": lists_sha256["in1k"],
            **{f"space {name}": f"timm {NAMED_MEMBERS[name]} sha256 {lists_sha256[name]}" for name in named},
        },
        "root": index[ROOT],
        "wnids": "\n".join(nodes),
        "names": [synsets[wnid].name for wnid in nodes],
        "parent_ptr": _u32(ptr),
        "parent_idx": _u32(idx),
        "in21k": _u32([index[w] for w in in21k]),
        "in1k": _u32([index[w] for w in in1k]),
        "spaces": {name: _u32([index[w] for w in wnids]) for name, wnids in sorted(named.items())},
    }
    return msgpack.packb(doc, use_bin_type=True)


def build(wordnet: Path, timm_wheel: Path, out_dir: Path) -> Path:
    """Write ``out_dir/wordnet.msgpack.gz``; returns its path."""
    in21k, in1k, sha21k, sha1k = read_timm_lists(timm_wheel)
    named, named_sha = read_named_lists(timm_wheel)
    payload = build_payload(wordnet.read_bytes(), in21k, in1k, {"in21k": sha21k, "in1k": sha1k, **named_sha}, named)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / DATA_NAME
    target.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="WordNet 3.0 data.noun")
    parser.add_argument("--timm-wheel", type=Path, required=True,
                        help="a timm wheel (.whl) holding the synset lists")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    target = build(args.wordnet, args.timm_wheel, args.out)
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
