"""bench/storage: an s3:// model download through the serving runtime against the raw
client copying the same object, in the same run, from a real S3 server (versitygw on
loopback), and the runtime's peak RSS while it downloads.

    .venv/bin/python bench/storage/bench_download.py [--mb 200] [--rounds 3]

"Through the runtime" is `onnxops_serving.fetch.fetch_model` (download to a temporary file
beside the model, rename, then the sha256 check every start does), in a fresh process each
round. "Raw" is obstore's own `get` streamed to a file in the same kind of fresh process, no
digest; "raw with digest" the same copy hashing each chunk as it arrives, the least any
client that verifies the sha256 must do. The three alternate, so drift in the machine's state
hits all. Writes results.json and prints the ratios (runtime throughput / raw throughput, and
/ raw-with-digest throughput: the runtime's own cost beyond the digest; 1.0 = none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "devcluster"))

from devcluster import s3store  # noqa: E402

RUNTIME = """
import resource, sys, time
from onnxops_serving.fetch import fetch_model
t = time.perf_counter()
got = fetch_model(sys.argv[1], expected_sha256=sys.argv[2], cache_dir=sys.argv[3])
took = time.perf_counter() - t
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

RAW = """
import resource, sys, time
import obstore
from onnxops_serving.s3 import store
t = time.perf_counter()
s = store(sys.argv[1], retries=4, timeout=30.0)
with open(sys.argv[3], "wb") as out:
    for chunk in obstore.get(s, sys.argv[2]).stream(min_chunk_size=1 << 20):
        out.write(chunk)
took = time.perf_counter() - t
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

RAW_DIGEST = """
import hashlib, resource, sys, time
import obstore
from onnxops_serving.s3 import store
t = time.perf_counter()
s = store(sys.argv[1], retries=4, timeout=30.0)
digest = hashlib.sha256()
with open(sys.argv[3], "wb") as out:
    for chunk in obstore.get(s, sys.argv[2]).stream(min_chunk_size=1 << 20):
        out.write(chunk)
        digest.update(chunk)
digest.hexdigest()
took = time.perf_counter() - t
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

BASELINE = """
import resource, obstore, onnxops_serving.fetch, onnxops_serving.s3
print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _run(code: str, args: list[str], env: dict[str, str]) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    took, rss = done.stdout.split()
    return float(took), int(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="object size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="onnxops-bench-storage-") as tmp:
        work = Path(tmp)
        with s3store.running(work / "s3") as server:
            bucket = server.bucket("models")
            blob = bucket / "big" / "model.onnx"
            blob.parent.mkdir()
            digest = hashlib.sha256()
            with blob.open("wb") as fh:  # incompressible bytes: no ONNX parse is timed
                for _ in range(args.mb):
                    chunk = os.urandom(1 << 20)
                    digest.update(chunk)
                    fh.write(chunk)
            sha = digest.hexdigest()
            env = {**os.environ, **server.env(), "PYTHONPATH": str(ROOT / "serving-image")}
            _, base_rss = _run(BASELINE, [], env)
            runtime, raw, raw_digest = [], [], []
            peak = 0
            for i in range(args.rounds):
                cache = work / f"cache-{i}"
                took, rss = _run(RUNTIME, ["s3://models/big/model.onnx", sha, str(cache)], env)
                runtime.append(took)
                peak = max(peak, rss)
                took, _ = _run(RAW, ["models", "big/model.onnx", str(work / f"raw-{i}")], env)
                raw.append(took)
                where = str(work / f"digest-{i}")
                took, _ = _run(RAW_DIGEST, ["models", "big/model.onnx", where], env)
                raw_digest.append(took)
                for path in (cache, work / f"raw-{i}", work / f"digest-{i}"):
                    subprocess.run(["rm", "-rf", str(path)], check=True)
    rt, rw, rd = statistics.median(runtime), statistics.median(raw), statistics.median(raw_digest)
    result: dict[str, Any] = {
        "object_mib": args.mb,
        "rounds": args.rounds,
        "runtime_s": runtime,
        "raw_s": raw,
        "runtime_mib_s": round(args.mb / rt, 1),
        "raw_mib_s": round(args.mb / rw, 1),
        "ratio": round(rw / rt, 3),
        "raw_with_digest_s": raw_digest,
        "raw_with_digest_mib_s": round(args.mb / rd, 1),
        "ratio_to_raw_with_digest": round(rd / rt, 3),
        "runtime_peak_rss_mib": round(peak / 2**20, 1),
        "imports_only_rss_mib": round(base_rss / 2**20, 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
