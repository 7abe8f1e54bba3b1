"""Side-by-side loader benchmark: one command, one run, the same shards and transform for every contender.

    python benchmarks/run.py                  # generated ImageNet-like images, ~3-5 min on 2 cores
    python benchmarks/run.py --quick          # smoke run, < 60 s
    python benchmarks/run.py --images DIR     # a real DIR/<wnid>/*.JPEG tree (--count images of it)
    make bench-peers                          # the same with LitData and MosaicML streaming (their venv)

Measures, in this order: the sharder (images/s) against the bare verify cost; the peers'
conversions of the same files (LitData's optimize, MosaicML's MDSWriter) and their exactly-once
check; the bare decode limit (one process, our TrainTransform on the JPEG bytes in a loop; also two
processes at once); then every contender in a fresh process: ImageNetStream from the local folder
and from a local S3 server, webdataset's stock pipeline, an ImageFolder-style map dataset, and
LitData and MosaicML streaming, each with our TrainTransform and with its users' stock PIL +
torchvision path; then the bare limit again. Prints the table and the ratios, and writes them to
benchmarks/RESULTS.md (full runs) or --results.

The peers run only when asked, in the python of their own venv (--peers-python; `make
bench-peers` makes .venv-peers and passes it): PyPI's torchvision, which `import streaming` loads,
needs a CUDA torch build, so they cannot share the main venv's CPU torch. Without --peers-python
they are listed as skipped, so `make bench` and the test suite's smoke run never start them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import workload  # noqa: E402
from loaders import OPTIONAL  # noqa: E402
from report import CONTROL, Entry  # noqa: E402

import imagenet_stream  # noqa: E402

DEFAULT_RESULTS = HERE / "RESULTS.md"
DEFAULT_PEERS_PYTHON = HERE.parent / ".venv-peers" / "bin" / "python"
PEERS = {"litdata": "LitData", "mosaic": "MosaicML streaming"}
# (transform, row label): (b) is the same transform as ImageNetStream's (the 1.3x target), (a) the peers'
# users' stock path, shown beside it.
PEER_TRANSFORMS = (("ours", "(b) TrainTransform"), ("stock", "(a) stock PIL+torchvision"))
PEERS_VENV_NAME = "peers' venv"  # the control row: ImageNetStream in the peers' python (their torch)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", metavar="DIR",
                   help="a DIR/<wnid>/*.JPEG tree of real images (default: generated)")
    p.add_argument("--count", type=int, help="images to use (default 1000; --quick 128)")
    p.add_argument("--classes", type=int, default=100, help="classes of the generated set (default 100)")
    p.add_argument("--realistic", action="store_true",
                   help="generate photographic texture with ImageNet's long tail of sizes (up to 4,000 px), "
                        "progressive, grayscale and CMYK JPEGs instead of the default smooth images")
    p.add_argument("--workers", help="comma-separated DataLoader num_workers (default 0,1,..,cores)")
    p.add_argument("--epochs", type=int, help="epochs per contender (default 2; --quick 1)")
    p.add_argument("--leak-epochs", type=int,
                   help="epochs of the RSS leak check (ImageNetStream and webdataset "
                                                   "at the most workers; default 5; --quick 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seconds", type=float, help="seconds per bare measurement (default 3; --quick 0.5)")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"),
                   help="scratch folder; generated images are cached there (default: %(default)s)")
    p.add_argument("--no-s3", action="store_true", help="skip the S3 contender")
    p.add_argument("--only", help="comma-separated contender kinds to run "
                                  "(ours,ours-s3,webdataset,folder,litdata,mosaic)")
    p.add_argument("--peers-python", metavar="PYTHON",
                   help="run LitData and MosaicML streaming too, in this python (their venv: `make "
                        f"bench-peers` makes {DEFAULT_PEERS_PYTHON.relative_to(HERE.parent)}); without it "
                        "they are listed as skipped")
    p.add_argument("--no-peers", action="store_true", help="skip LitData and MosaicML streaming")
    p.add_argument("--results", help="write the run into this markdown file (default: benchmarks/RESULTS.md "
                                     "for full runs, nothing for --quick)")
    p.add_argument("--quick", action="store_true", help="small smoke run (< 60 s)")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    quick = args.quick
    args.count = args.count or (128 if quick else 1000)
    args.epochs = args.epochs or (1 if quick else 2)
    args.leak_epochs = args.leak_epochs or (2 if quick else 5)
    args.seconds = args.seconds or (0.5 if quick else 3.0)
    if args.workers:
        args.workers = [int(w) for w in args.workers.split(",")]
    else:
        args.workers = [min(2, cores)] if quick else list(range(cores + 1))
    args.only = set(args.only.split(",")) if args.only else {"ours", "ours-s3", "webdataset", "folder",
                                                             *PEERS}
    if args.no_s3:
        args.only.discard("ours-s3")
    if args.no_peers:
        args.only -= set(PEERS)
    if args.peers_python:  # absolute (children run in benchmarks/), not resolved: a venv python is a link
        args.peers_python = os.path.abspath(args.peers_python)
    if args.results is None and not quick:
        args.results = str(DEFAULT_RESULTS)
    return args


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def run_child(spec: dict[str, Any] | None, work: Path, python: str | None = None,
              command: tuple[str, ...] = ("measure.py",)) -> dict[str, Any]:
    """Run ``benchmarks/<command> [SPEC.json]`` in a fresh interpreter (``python``: this one unless
    given); return the JSON of its last output line."""
    argv = [python or sys.executable, str(HERE / command[0]), *command[1:]]
    path = None
    if spec is not None:
        path = work / f"spec-{os.getpid()}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(spec))
        argv.append(str(path))
    env = None
    if python is not None:  # a peer's venv: the same imagenet_stream as this harness, no PyPI check
        pythonpath = os.pathsep.join(p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": pythonpath, "LITDATA_DISABLE_VERSION_CHECK": "1"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=HERE, check=False, env=env)
    finally:
        if path is not None:
            path.unlink()
    what = " ".join(command) + (f" {spec['kind']}" if spec and "kind" in spec else "")
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The checkout whose imagenet_stream this harness runs (PYTHONPATH or the editable install): the peers' venv
# gets the same one on its PYTHONPATH.
_PROJECT_ROOT = str(Path(imagenet_stream.__file__).resolve().parent.parent)


def peers_setup(args: argparse.Namespace, images: workload.ImageSet, work: Path,
                cores: int) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, Any]]:
    """The peers' versions, why any is skipped, their conversions of ``images`` and the exactly-once check.

    Returns ``(info, skipped, conversions, verified)``; a peer in ``skipped`` (kind -> reason) is not run.
    """
    wanted = [k for k in PEERS if k in args.only]
    skipped: dict[str, str] = {}
    info: dict[str, Any] = {}
    if not wanted:
        return info, skipped, {}, {}
    python = args.peers_python
    if not python or not Path(python).exists():
        reason = ("not requested (`make bench-peers` runs them)" if not python
                  else f"--peers-python {python} not found")
        return info, dict.fromkeys(wanted, reason), {}, {}
    try:
        info = run_child(None, work, python, ("peers.py", "info"))
    except RuntimeError as exc:
        log(f"peers: {exc}")
        return info, dict.fromkeys(wanted, f"{python} cannot run benchmarks/peers.py"), {}, {}
    errors = info.get("errors", {})
    for kind, module in OPTIONAL.items():
        if kind in wanted and (module in errors or "torchvision" in errors):
            error = errors.get(module) or errors["torchvision"]
            skipped[kind] = f"`import {module}` failed in {python}: {error}"
    if info.get("imagenet_stream") != str(Path(_PROJECT_ROOT, "imagenet_stream")):
        log(f"peers: WARNING: their imagenet_stream is {info.get('imagenet_stream')}, not this harness's")
    kinds = [k for k in wanted if k not in skipped]
    if not kinds:
        return info, skipped, {}, {}
    log(f"peers: converting {len(images)} images with " + " and ".join(PEERS[k] for k in kinds) + " ...")
    conversions = run_child({"paths": images.paths, "wnids": images.wnids, "out": str(work / "peers"),
                             "workers": cores, "kinds": kinds}, work, python, ("peers.py", "convert"))
    verified: dict[str, Any] = {}
    for kind in kinds:
        with _scratch(work, kind) as scratch:
            verified[kind] = run_child({"kind": kind, "data": conversions[kind]["dir"], "scratch": scratch,
                                        "paths": images.paths, "wnids": images.wnids,
                                        "workers": max(args.workers), "batch_size": args.batch_size,
                                        "epochs": 2}, work, python, ("peers.py", "verify"))
        v = verified[kind]
        log(f"peers: {PEERS[kind]} exactly-once check over {v['epochs']} epochs: "
            f"{'ok' if v['ok'] else 'FAILED: ' + '; '.join(v['problems'])}")
    return info, skipped, conversions, verified


@contextlib.contextmanager
def _scratch(work: Path, kind: str) -> Iterator[str]:
    """A fresh, unique folder for one peer run (LitData's cache, MosaicML's ``local``), removed after."""
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work / "peers"))
    try:
        yield str(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bare(images: list[str], seconds: float, work: Path, processes: int = 1) -> list[dict[str, float]]:
    """The bare decode limit in ``processes`` processes at once (one result each)."""
    spec = {"kind": "bare", "images": images, "seconds": seconds}
    with ThreadPoolExecutor(processes) as pool:
        return list(pool.map(lambda _: run_child(spec, work), range(processes)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = "python benchmarks/run.py" + ("" if argv is None and len(sys.argv) == 1 else " " + shlex.join(
        sys.argv[1:] if argv is None else argv))

    # -- data ----------------------------------------------------------------------------------
    if args.images:
        images = workload.from_folder(args.images, args.count)
    else:
        root = work / workload.cache_name(args.count, min(args.classes, args.count), realistic=args.realistic)
        log(f"generating {args.count} images in {root} (cached) ...")
        images = workload.generate(str(root), args.count, min(args.classes, args.count), workers=cores,
                                   realistic=args.realistic)
    data_line = workload.describe(images)
    log(data_line)

    # -- sharder vs bare verify -------------------------------------------------------------------
    shards_dir = work / "shards"
    shard_size = max(16, len(images) // 16)
    result, shard_s = workload.shard_images(images, str(shards_dir), shard_size, cores,
                                            str(work / "images.csv"))
    kept = result.manifest.num_samples
    shard_rate = kept / shard_s
    verify = workload.bare_verify(images.paths[:: max(1, len(images) // 100)], args.seconds / 2)
    log(f"sharder: {kept} images in {shard_s:.2f} s ({len(result.manifest.shards)} shards)")
    shard_paths = [str(shards_dir / s.name) for s in result.manifest.shards]

    # -- the peers' conversions of the same files, and their exactly-once check ------------------
    peer_info, peer_skipped, conversions, verified = peers_setup(args, images, work, cores)
    peer_kinds = [k for k in PEERS if k in conversions]

    # -- bare limit --------------------------------------------------------------------------------
    bare_images = list(images.paths[:: max(1, len(images) // 200)])
    bare_before = bare(bare_images, args.seconds, work)[0]
    bare_parallel = bare(bare_images, args.seconds, work, cores) if cores > 1 and not args.quick else []
    log(f"bare limit: {bare_before['train']:.0f} img/s per core")

    # -- contenders ----------------------------------------------------------------------------
    base = {"batch_size": args.batch_size}
    most = max(args.workers)
    entries: list[Entry] = []
    s3 = None
    s3_url = ""
    if "ours-s3" in args.only:
        from s3local import LocalS3
        s3 = LocalS3().start()
        s3_url = s3.upload(str(shards_dir))
    try:
        for w in args.workers:
            epochs = args.leak_epochs if w == most else args.epochs
            plans: list[tuple[str, str, dict[str, Any]]] = []
            if "ours" in args.only:
                plans.append(("ImageNetStream local", "ours", {"url": str(shards_dir)}))
            if "ours-s3" in args.only and s3 is not None:
                plans.append(("ImageNetStream S3", "ours",
                              {"url": s3_url, "storage_options": s3.storage_options}))
            if "webdataset" in args.only:
                plans.append(("webdataset stock", "webdataset", {"shards": shard_paths}))
            if "folder" in args.only:
                plans.append(("ImageFolder-style", "folder", {"paths": images.paths, "wnids": images.wnids}))
            if peer_kinds and "ours" in args.only:  # the control: ImageNetStream in the peers' venv
                plans.append((f"ImageNetStream local, {PEERS_VENV_NAME}", "ours", {"url": str(shards_dir)}))
            for kind in peer_kinds:
                for transform, label in PEER_TRANSFORMS:
                    plans.append((f"{PEERS[kind]} {label}", kind,
                                  {"data": conversions[kind]["dir"], "transform": transform}))
            for name, kind, extra in plans:
                leak = kind in ("ours", "webdataset") and "S3" not in name and PEERS_VENV_NAME not in name
                spec = {**base, **extra, "kind": kind, "workers": w,
                        "epochs": epochs if leak else args.epochs,
                        "bare_images": bare_images, "bare_seconds": args.seconds / 2}
                log(f"{name}, workers={w}, epochs={spec['epochs']} ...")
                if kind in PEERS:
                    with _scratch(work, kind) as scratch:
                        result_ = run_child({**spec, "scratch": scratch}, work, args.peers_python)
                    entries.append(Entry(name, kind, w, result_, transform=extra["transform"]))
                elif PEERS_VENV_NAME in name:
                    entries.append(Entry(name, CONTROL, w, run_child(spec, work, args.peers_python)))
                else:
                    entries.append(Entry(name, kind, w, run_child(spec, work)))
    finally:
        if s3 is not None:
            s3.stop()
    for kind, reason in peer_skipped.items():
        entries.append(Entry(PEERS[kind], kind, most, skipped=reason))

    bare_after = bare(bare_images, args.seconds, work)[0]
    limit = (bare_before["train"] + bare_after["train"]) / 2

    # -- report ----------------------------------------------------------------------------------
    lines = [
        f"Command: `{command}`  ",
        f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}  ",
        f"Machine: {cores} cores ({_cpu_model()}), Python {sys.version.split()[0]}  ",
        f"Data: {data_line}; {len(result.manifest.shards)} shards of {shard_size}; "
        f"batch size {args.batch_size}; "
        f"transform RandomResizedCrop(224) + flip → uint8 CHW  ",
        f"Run time: {time.perf_counter() - started:.0f} s  ",
        f"Load: {_loadavg()} (1, 5, 15-minute load averages at the end of the run)",
        "",
        "### Bare limits (images per CPU-second of one process, no I/O)",
        "",
        f"- decode + RandomResizedCrop(224) + flip, our TrainTransform (draft decode): "
        f"{bare_before['train']:,.0f} img/s before, {bare_after['train']:,.0f} after the contenders; "
        f"**limit per core = {limit:,.0f} img/s** (their mean)",
        f"- the same with the stock full-decode PIL path (what webdataset/ImageFolder run): "
        f"{bare_before['naive']:,.0f} img/s",
        f"- the full JPEG decode alone, no crop or resize: {bare_before['decode']:,.0f} img/s; so a loader that "
        f"decodes whole images cannot beat the stock path by more than "
        f"{bare_before['decode'] / bare_before['naive']:.2f}× here (1.8× would need "
        f"{1.8 * bare_before['naive']:,.0f} img/s per core)",
    ]
    if bare_parallel:
        total = sum(r["train"] for r in bare_parallel)
        lines.append(f"- {cores} bare processes at once: {total / cores:,.0f} img/CPU-s each "
                     f"({total / (limit * cores):.2f}× the single-process figure: what sharing the "
                     f"caches and memory bandwidth costs)")
    lines += [
        "",
        "### Loaders",
        "",
        *report.loader_table(entries, limit, cores),
        "",
        "Rows (a)/(b): the peers read their own conversion of the same files (LitData `optimize`, MosaicML "
        "`MDSWriter`; see *Peers*); (b) applies our TrainTransform to the bytes, as ImageNetStream does (the "
        "same transform: the row compares loaders only; the 1.3× target is judged against it), (a) their "
        "users' stock path: PIL decode + torchvision RandomResizedCrop(224) + flip + PILToTensor. "
        "img/s = the steady rate inside epochs (each epoch from its first batch to its last); × limit = "
        "img/s / (limit per core × cores used: 1 at workers=0, else the workers), with the limit per core "
        "measured again in the contender's process right after it (other load drifts over a run); "
        "img/s with restarts = every "
        "image after the very first batch over all the time since (at each epoch the DataLoader refills its "
        "workers' pipeline, about one batch per worker: a fixed cost per epoch that 1.28 M images amortize "
        "and these small epochs do not); img per CPU-s = images / CPU seconds of the whole process tree "
        "(compare with the limit per core: it is immune to other load on the machine); cores busy = CPU "
        "seconds per wall second of the tree (of the main process alone in brackets): below the cores used, "
        "the loader waited or other processes took the cores; TTFB = from building the dataset to its first "
        "batch, the contender's libraries already imported (their import time in brackets where it is 0.1 s "
        "or more); peak tree RSS = the largest sum of RSS over "
        "the loader process and its workers; RSS drift = the largest deviation of a worker's RSS at the end "
        "of an epoch from its median over the epochs (the leak check).",
        "",
        "### Ratios against the targets",
        "",
        *report.ratio_lines(entries, limit, cores, args.workers),
        "",
        *report.peer_lines(entries, peer_info, peer_skipped, conversions, verified, shard_rate, kept, cores),
        "### Sharder",
        "",
        f"- `imagenet-stream shard` with {cores} workers: {shard_rate:,.0f} img/s "
        f"({kept} images, {shard_s:.2f} s, "
        f"listing, verify, packing and the manifest included)",
        f"- bare verify, one process: sha256 + full decode {verify['full_decode_sha256']:,.0f} img/s; our "
        f"`verify_record` (sha256 + 1/8 draft decode check) {verify['verify_record']:,.0f} img/s",
        f"- sharder / ({cores} × verify_record) = {shard_rate / (cores * verify['verify_record']):.2f}; "
        f"sharder / ({cores} × full decode + sha256) = "
        f"{shard_rate / (cores * verify['full_decode_sha256']):.2f}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.results:
        report.write_results(args.results, text)
        log(f"wrote {args.results}")
    return 0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
