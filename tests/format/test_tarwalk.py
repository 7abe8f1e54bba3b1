"""The tar walker against tarfile on generated archives (ustar, GNU, PAX), and on damage."""
from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.format.tarwalk import FILE, LINK, TarDamaged, TarWalker


def build(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT, extra=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def reference(data: bytes) -> list[tuple[str, int, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m.name, m.offset, m.offset_data, m.size) for m in tar]


def walk(data: bytes, **kw) -> list[tuple[str, int, int, int]]:
    return [(m.name, m.header_offset, m.offset, m.size) for m in TarWalker(io.BytesIO(data), **kw)]


names = st.text(alphabet=st.sampled_from("abcxyz019_-./é"), min_size=1, max_size=160).filter(
    lambda n: not n.endswith("/") and n.strip("./") and "//" not in n)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, st.binary(max_size=1500)), min_size=0, max_size=8),
       st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]), st.booleans())
def test_offsets_names_and_sizes_match_tarfile(members, fmt, seekable) -> None:
    data = build(members, fmt)
    got = walk(data, seekable=seekable)
    assert got == reference(data)
    walker = TarWalker(io.BytesIO(data), seekable=seekable)
    assert [walker.read_data(m, 1 << 20) for m in walker] == [d for _, d in members]


def test_ustar_prefix_field_and_kinds() -> None:
    long_dir = "d" * 120
    link = tarfile.TarInfo("alink")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    data = build([(f"{long_dir}/x.jpg", b"abc")], tarfile.USTAR_FORMAT, extra=[link])
    members = list(TarWalker(io.BytesIO(data)))
    assert [(m.name, m.kind) for m in members] == [(f"{long_dir}/x.jpg", FILE), ("alink", LINK)]
    assert members[1].size == 0


def test_an_inner_tar_reports_absolute_offsets() -> None:
    inner = build([("n01440764_1.JPEG", b"x" * 700), ("n01440764_2.JPEG", b"y" * 10)])
    outer = build([("n01440764.tar", inner)])
    (name, _, data_at, size), = reference(outer)
    got = walk(outer, start=data_at, end=data_at + size)
    assert [(n, s) for n, _, _, s in got] == [("n01440764_1.JPEG", 700), ("n01440764_2.JPEG", 10)]
    assert outer[got[0][2]:got[0][2] + 700] == b"x" * 700
    assert [g[1:3] for g in got] == [(h + data_at, d + data_at) for _, h, d, _ in reference(inner)]


@pytest.mark.parametrize("seekable", [True, False])
def test_damage_is_reported_with_its_offset(seekable: bool) -> None:
    data = build([("a.jpg", b"1" * 2000), ("b.jpg", b"2" * 2000)])
    with pytest.raises(TarDamaged, match="inside the data of 'b.jpg'|runs past the end"):
        walk(data[:4000], seekable=seekable)  # cut inside b's data
    with pytest.raises(TarDamaged, match="inside a header"):
        walk(data[:2560 + 100], seekable=seekable)  # cut inside b's header
    broken = bytearray(data)
    broken[2560 + 10] ^= 0xFF  # b's header: name byte flipped, checksum no longer matches
    with pytest.raises(TarDamaged, match="bad checksum.*2,560"):
        walk(bytes(broken), seekable=seekable)
    with pytest.raises(TarDamaged, match="without an end-of-archive"):
        walk(data[:5120], seekable=seekable)  # both members whole, no end blocks
    assert len(walk(data[:5120], seekable=seekable, require_end=False)) == 2
    assert walk(b"", require_end=False) == [] and walk(bytes(10240)) == []


def test_random_bytes_and_huge_extension_headers_are_damage() -> None:
    with pytest.raises(TarDamaged):
        walk(bytes(range(256)) * 8)
    info = tarfile.TarInfo("x" * 2000)  # GNU long name: fine
    assert walk(build([(info.name, b"z")]))[0][0] == "x" * 2000


def test_read_data_is_bounded_and_only_for_the_current_member() -> None:
    data = build([("a.jpg", b"1" * 3000), ("b.jpg", b"2" * 10)])
    walker = TarWalker(io.BytesIO(data))
    it = iter(walker)
    a = next(it)
    with pytest.raises(ValueError, match="more than the limit"):
        walker.read_data(a, 2999)
    b = next(it)
    with pytest.raises(ValueError, match="no longer available"):
        walker.read_data(a, 1 << 20)
    assert walker.read_data(b, 10) == b"2" * 10
