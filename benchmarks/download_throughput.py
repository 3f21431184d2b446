"""Download throughput of pipeline.data.sources over a local HTTP server.

Serves the two Yale mirror archives (``../shared/mirror``) from the fault-injecting
server of ``tests/http_faults.py`` on 127.0.0.1 and downloads each one with
``pipeline.data.sources.download`` (sha256 pinned, so each timing includes one full
hash pass): plainly, and with the connection dropped half way through (the
client resumes with a Range request). Also times the sha256 pass alone and the
unpacking of each archive. Loopback numbers measure the client's overhead, not
a network.

    python benchmarks/download_throughput.py [--repeats 3] [--mirror ../shared/mirror]

Writes ``benchmarks/results/download_throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from http_faults import FaultServer  # noqa: E402

from pipeline.data.sources import download, sha256_file, unpack_archive  # noqa: E402
from pipeline.io import write_json  # noqa: E402

ARCHIVES = ("yalefaces.zip", "CroppedYale.zip")


def read_sums(mirror: Path) -> dict[str, str]:
    lines = (mirror / "SHA256SUMS").read_text().splitlines()
    pairs = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {name: digest for digest, name in pairs}


def _serve(connection, routes: dict[str, dict]) -> None:
    """Child process: serve ``routes`` until told to stop, then send back the request log."""
    with FaultServer() as server:
        for path, options in routes.items():
            server.route(path, **options)
        connection.send(server.base)
        connection.recv()
        connection.send([dataclasses.asdict(request) for request in server.requests()])


@contextlib.contextmanager
def server_process(routes: dict[str, dict]) -> Iterator[tuple[str, list[dict]]]:
    """A FaultServer in its own process (so that it does not share the client's GIL)."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_serve, args=(child, routes), daemon=True
    )
    process.start()
    requests: list[dict] = []
    try:
        yield parent.recv(), requests
    finally:
        parent.send("stop")
        requests.extend(parent.recv())
        process.join(timeout=10)


def timed_download(source: Path, digest: str, drop: int | None) -> dict:
    """One download of ``source`` into a fresh folder; seconds, requests and bytes served."""
    options = {"file": source, "drop_after": drop, "drop_times": 1 if drop else 0}
    with (
        server_process({f"/{source.name}": options}) as (base, answered),
        tempfile.TemporaryDirectory() as folder,
    ):
        target = Path(folder) / source.name
        start = time.perf_counter()
        download(f"{base}/{source.name}", target, digest, timeout=30, attempts=5, backoff=0.1)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "requests": len(answered),
        "ranges": [request["range"] for request in answered],
        "bytes_served": sum(request["sent"] for request in answered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "mirror")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "download_throughput.json"
    )
    args = parser.parse_args()
    if not (args.mirror / "SHA256SUMS").is_file():
        sys.exit(f"{args.mirror}: no mirror archives (SHA256SUMS) found")
    sums = read_sums(args.mirror)
    results = []
    for name in ARCHIVES:
        source = args.mirror / name
        size = source.stat().st_size
        for mode, drop in (("plain", None), ("drop_half_then_resume", size // 2)):
            runs = [timed_download(source, sums[name], drop) for _ in range(args.repeats)]
            seconds = [run["seconds"] for run in runs]
            median = statistics.median(seconds)
            results.append(
                {
                    "archive": name,
                    "bytes": size,
                    "mode": mode,
                    "runs": runs,
                    "median_seconds": median,
                    "median_MB_per_s": size / 1e6 / median,
                    "bytes_served_equals_size": all(r["bytes_served"] == size for r in runs),
                }
            )
            print(f"{name:16} {mode:22} {size / 1e6 / median:8.1f} MB/s  ({median:.3f} s)")
        start = time.perf_counter()
        sha256_file(source)
        hashing = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            unpack_archive(source, Path(folder) / "files")
            unpacking = time.perf_counter() - start
        results.append(
            {
                "archive": name,
                "bytes": size,
                "sha256_seconds": hashing,
                "sha256_MB_per_s": size / 1e6 / hashing,
                "unpack_seconds": unpacking,
            }
        )
        print(f"{name:16} sha256 {size / 1e6 / hashing:.0f} MB/s, unpack {unpacking:.2f} s")
    write_json(
        args.out,
        {
            "what": "pipeline.data.sources.download over 127.0.0.1 (tests/http_faults.py server, "
            "in its own process); "
            "MB = 1e6 bytes; each download time includes one sha256 pass over the file",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "temp_dir": tempfile.gettempdir(),
            "repeats": args.repeats,
            "results": results,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
