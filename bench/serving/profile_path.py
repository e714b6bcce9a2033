"""Where a request's time goes: py-spy samples the runtime while wrk drives it at c=64.

    .venv/bin/python bench/serving/profile_path.py [--model iris] [--bare] [--grpc] [--seconds 8]

py-spy lives in a bench-only venv (bench/.venvs/pyspy, created on first use). The server is
pinned to CPU 0 and wrk to CPU 1 as in run.py; ``--bare`` serves model.onnx alone (no
model.json: no drift window), otherwise the bundle (drift and the feedback cache on). Prints
the top functions by own time and by time including callees, as % of the busy samples;
writes the collapsed stacks to bench/.work/profile/.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab
import run

OUT = run.REPO / "bench" / ".work" / "profile"
PYSPY = run.VENVS / "pyspy" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def _ensure_pyspy() -> None:
    if not PYSPY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PYSPY.parents[1])], check=True)
        subprocess.run([str(PYSPY.parent / "pip"), "install", "-q", "py-spy==0.4.3"], check=True)


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    parts = Path(m["file"]).parts
    where = "/".join(parts[-2:]) if len(parts) > 1 else m["file"]
    return f"{m['func']} ({where})"


def summarize(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [f"{samples} busy samples", "", "| own % | function |", "|---|---|"]
    lines += [f"| {n / samples:.1%} | `{f}` |" for f, n in own.most_common(top)]
    lines += ["", "| incl. % | function |", "|---|---|"]
    lines += [f"| {n / samples:.1%} | `{f}` |" for f, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="iris")
    parser.add_argument("--bare", action="store_true", help="model.onnx alone, no model.json")
    parser.add_argument("--grpc", action="store_true", help="ONNXOPS_GRPC_PORT set (no gRPC load)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--label", default="")
    parser.add_argument("--rev", default=None, help="profile this git revision's runtime")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, ab.stop_on_signal)
    _ensure_pyspy()
    OUT.mkdir(parents=True, exist_ok=True)
    run.WORK.mkdir(parents=True, exist_ok=True)
    models = run.WORK / "models"
    if not (models / "mlp" / "row.json").exists():
        subprocess.run([str(run.OUR_PY), str(run.HERE / "models.py"), str(models)], check=True)
    folder = models / args.model
    if args.bare:
        bare = OUT / f"{args.model}-bare"
        bare.mkdir(exist_ok=True)
        shutil.copy(folder / "model.onnx", bare / "model.onnx")
        shutil.copy(folder / "row.json", bare / "row.json")
        folder = bare
    revision = ab.Revision(args.rev or "head", args.rev)
    start = ab._variant(revision, args.grpc).start

    name = args.label or "-".join(
        [args.rev or "head", args.model] + ["bare"] * args.bare + ["grpc"] * args.grpc
    )
    AB_WORK = ab.AB_WORK
    AB_WORK.mkdir(parents=True, exist_ok=True)
    lua = ab._lua(args.model, folder)
    collapsed = OUT / f"{name}.txt"
    server: run.Running | None = None
    try:
        revision.prepare()
        server = run.Running(run.Peer(name, start), args.model, folder, 19390)
        server.wait_ready()
        run.wrk(server.url + "/infer", lua, 8, 1)
        spy = subprocess.Popen(
            [str(PYSPY), "record", "-p", str(server.proc.pid), "-d", str(args.seconds),
             "-r", "250", "--nonblocking", "-f", "raw", "-o", str(collapsed)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            point = run.wrk(server.url + "/infer", lua, args.conns, args.seconds)
        finally:
            spy.wait(timeout=args.seconds + 30)
    finally:
        if server is not None:
            server.close()
        revision.cleanup()
    print(f"{name}: {point['rps']:.0f} req/s at c={args.conns} while sampled")
    print(summarize(collapsed, args.top))


if __name__ == "__main__":
    main()
