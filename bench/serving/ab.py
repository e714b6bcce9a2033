"""Serving A/B: this checkout's runtime against the code of another git revision, same run.

    .venv/bin/python bench/serving/ab.py [--base f5da50b] [--rounds 3] [--seconds 4]
        [--models iris,mlp] [--concurrency 1,8,64]

The base revision is checked out with ``git worktree add`` under bench/.work/ab/REV (removed
afterwards, even on failure); it runs in this checkout's venv when every pin of its
serving-image/requirements.txt is already installed there, else in a venv of its own under
bench/.venvs/ab-REV. For each model every variant is up at once: base and head with REST only,
each with ``ONNXOPS_GRPC_PORT`` set too (as the image runs; base only if it has gRPC), and the
uvicorn floor. Servers are pinned to CPU 0, wrk to CPU 1 (run.py's helpers); each round runs
every variant once per concurrency, in an order that alternates between rounds, so drift in
the machine's load falls on all alike. Prints medians and ratios (req/s, p50, and server CPU
per request, which a shared machine distorts least); writes bench/.work/ab/results.json. Only
the ratios within one invocation mean much on a shared box.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # run.py beside this file: one copy of the pinning and wrk helpers

REPO = run.REPO
AB_WORK = REPO / "bench" / ".work" / "ab"
PORT = 19290  # away from run.py's 18990.. so both can be up on one box
FLOOR = "floor"


def _git(*args: str) -> str:
    return subprocess.check_output(["git", "-C", str(REPO), *args], text=True).strip()


def _pins(requirements: str) -> dict[str, str]:
    out = {}
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def _installed(py: Path) -> dict[str, str]:
    listing = subprocess.check_output(
        [str(py), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"], text=True
    )
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listing)}


class Revision:
    """One revision's runtime: where its code is and which Python runs it."""

    def __init__(self, label: str, rev: str | None) -> None:
        self.label = label
        self.rev = rev  # None: this checkout as it is (uncommitted changes included)
        self.commit = _git("rev-parse", "--short", rev or "HEAD")
        self.tree = REPO if rev is None else AB_WORK / self.commit
        self.python = run.OUR_PY
        self._added = False

    def prepare(self) -> None:
        if self.rev is not None:
            if self.tree.exists():  # left by a run that was killed hard
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(self.tree)], check=False)  # fmt: skip
                shutil.rmtree(self.tree, ignore_errors=True)
            AB_WORK.mkdir(parents=True, exist_ok=True)
            _git("worktree", "add", "--detach", str(self.tree), self.commit)
            self._added = True
        wanted = _pins((self.tree / "serving-image" / "requirements.txt").read_text())
        have = _installed(run.OUR_PY)
        missing = {n: v for n, v in wanted.items() if have.get(n) != v}
        if not missing:
            return  # this checkout's venv holds every pin: reuse it
        venv = run.VENVS / f"ab-{self.commit}"
        self.python = venv / "bin" / "python"
        if not self.python.exists():
            print(f"{self.label}: pins differ ({missing}); creating {venv}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(self.python), "-m", "pip", "install", "-q", "-r",
                 str(self.tree / "serving-image" / "requirements.txt")],
                check=True,
            )  # fmt: skip

    def has_grpc(self) -> bool:
        settings = self.tree / "serving-image" / "onnxops_serving" / "settings.py"
        return "grpc_port" in settings.read_text()

    def cleanup(self) -> None:
        if self._added:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(self.tree)], check=False)  # fmt: skip
            self._added = False


def _variant(revision: Revision, grpc: bool) -> run.Peer:
    def start(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
        env = {
            "ONNXOPS_MODEL_URI": str(folder),
            "ONNXOPS_MODEL_NAME": model,  # a bare model.onnx would be named "model"
            "ONNXOPS_PORT": str(port),
            "ONNXOPS_HOST": "127.0.0.1",
            "ONNXOPS_LOG_LEVEL": "warning",
            "PYTHONPATH": str(revision.tree / "serving-image"),
            "ONNXOPS_GRPC_PORT": str(port + 1) if grpc else "0",
        }
        return [str(revision.python), "-m", "onnxops_serving"], env, revision.tree

    return run.Peer(f"{revision.label}-{'grpc' if grpc else 'rest'}", start)


def _lua(model: str, folder: Path) -> Path:
    row = json.loads((folder / "row.json").read_text())
    body = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, len(row[0])], "datatype": "FP32", "data": row}]}
    )
    lua = AB_WORK / f"{model}.lua"
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    return lua


def bench_model(
    peers: list[run.Peer], model: str, folder: Path, conc: list[int], seconds: float, rounds: int
) -> dict[str, dict[str, object]]:
    lua = _lua(model, folder)
    servers: list[run.Running] = []
    try:
        for i, peer in enumerate(peers):
            servers.append(run.Running(peer, model, folder, PORT + 10 * i))
        for server in servers:
            server.wait_ready()
            run.wrk(server.url + "/infer", lua, 8, 1)  # warm-up
        for c in conc:
            for r in range(rounds):
                order = servers if r % 2 == 0 else servers[::-1]
                for server in order:
                    server.measure(lua, c, seconds)
        out: dict[str, dict[str, object]] = {}
        for server in servers:
            out[server.label] = {
                str(c): {
                    key: run._median([p[key] for p in points])
                    for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "non2xx")
                }
                | {"rounds": points}
                for c, points in server.runs.items()
            }
        return out
    finally:
        for server in servers:
            server.close()


def _report(model: str, result: dict[str, dict[str, object]], base: str, head: str) -> list[str]:
    lines = []
    labels = list(result)
    for c in next(iter(result.values())):
        lines.append(f"{model} c={c}")
        floor = result[FLOOR][c]["rps"]  # type: ignore[index]
        # CPU per request is what a loaded machine distorts least: req/s also measures how
        # much of CPU 0 the scheduler gave each server.
        floor_cpu = result[FLOOR][c]["cpu_us_per_req"]  # type: ignore[index]
        for label in labels:
            point: dict[str, float] = result[label][c]  # type: ignore[assignment]
            lines.append(
                f"  {label:10s} {point['rps']:8.0f} req/s  p50 {point['p50_ms']:6.2f} ms  "
                f"p99 {point['p99_ms']:6.2f} ms  cpu {point['cpu_us_per_req']:5.0f} µs/req  "
                f"{point['rps'] / floor:5.0%} of floor  "
                f"{floor_cpu / point['cpu_us_per_req']:5.0%} of floor by cpu/req"
                + (f"  non-2xx {point['non2xx']:.0f}" if point["non2xx"] else "")
            )
        ref: dict[str, float] = result[f"{base}-rest"][c]  # type: ignore[assignment]
        for label in (f"{head}-rest", f"{head}-grpc"):
            point = result[label][c]  # type: ignore[assignment]
            lines.append(
                f"  {label} / {base}-rest: req/s x{point['rps'] / ref['rps']:.3f}, "
                f"p50 x{point['p50_ms'] / ref['p50_ms']:.3f}, "
                f"cpu/req x{point['cpu_us_per_req'] / ref['cpu_us_per_req']:.3f}"
            )
    return lines


def stop_on_signal(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {sig}")  # unwinds through the cleanups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="f5da50b", help="the revision to compare against")
    parser.add_argument(
        "--head", default=None, help="a revision for the other side (default: this checkout)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each point")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="iris,mlp")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--out", type=Path, default=AB_WORK / "results.json")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, stop_on_signal)
    AB_WORK.mkdir(parents=True, exist_ok=True)
    run.WORK.mkdir(parents=True, exist_ok=True)
    models_dir = run.WORK / "models"
    if not (models_dir / "mlp" / "row.json").exists():
        subprocess.run([str(run.OUR_PY), str(run.HERE / "models.py"), str(models_dir)], check=True)
    base = Revision("base", args.base)
    head = Revision("head", args.head)
    conc = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base": base.commit,
        "head": head.commit + ("" if args.head else " (working tree)"),
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "models": {},
    }
    try:
        for revision in (base, head):
            revision.prepare()
        results["pythons"] = {"base": str(base.python), "head": str(head.python)}
        peers = [_variant(base, False)]
        if base.has_grpc():
            peers.append(_variant(base, True))
        peers += [_variant(head, False), _variant(head, True)]
        peers.append(run.Peer(FLOOR, run._floor))
        print(f"base {base.commit} ({base.python}), head {results['head']} ({head.python}); "
              f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        for model in args.models.split(","):
            result = bench_model(peers, model, models_dir / model, conc, args.seconds, args.rounds)
            results["models"][model] = result  # type: ignore[index]
            print("\n".join(_report(model, result, "base", "head")), flush=True)
    finally:
        base.cleanup()
        head.cleanup()
        results["loadavg_after"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"load average before {results['loadavg_before']}, after "
              f"{results['loadavg_after']}; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
