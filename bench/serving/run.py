"""Serving benchmark: onnxops-serving vs KServe's ModelServer vs MLServer, same models, same box.

    .venv/bin/python bench/serving/run.py [--seconds 6] [--models iris,forest,mlp]

Creates the peer virtualenvs under bench/.venvs/ (one each: kserve and mlserver cannot share
one), builds the models, then for each model and server: starts the server pinned to CPU 0,
drives it with wrk pinned to CPU 1 (keep-alive, one-row OIP v2 JSON requests) at each
concurrency, and records req/s, p50, p99 and RSS. Writes bench/.work/serving/results.json;
render.py turns that into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = REPO / "bench" / ".work" / "serving"
VENVS = REPO / "bench" / ".venvs"
OUR_PY = REPO / ".venv" / "bin" / "python"
PORT = 18990
SERVER_CPU, LOAD_CPU = "0", "1"


def _sh(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def ensure_venvs(names: tuple[str, ...] = ("kserve", "mlserver")) -> dict[str, str]:
    """Create the peer venvs if missing; pin onnxruntime/numpy to the versions ours uses."""
    ort_ver = subprocess.check_output(
        [
            OUR_PY,
            "-c",
            "import onnxruntime, numpy; print(onnxruntime.__version__, numpy.__version__)",
        ],
        text=True,
    ).split()
    pins = [f"onnxruntime=={ort_ver[0]}"]
    specs = {
        "kserve": ["kserve==0.21.0", *pins, f"numpy=={ort_ver[1]}"],
        # httptools: without it uvicorn falls back to the slow h11 parser (unfair to MLServer).
        "mlserver": ["mlserver==1.7.1", "httptools", *pins],
    }
    versions = {}
    for name in names:
        packages = specs[name]
        venv = VENVS / name
        py = venv / "bin" / "python"
        if not py.exists():
            print(f"creating {venv} ...", flush=True)
            _sh([sys.executable, "-m", "venv", str(venv)])
            _sh([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
            _sh([str(py), "-m", "pip", "install", "-q", *packages])
        versions[name] = subprocess.check_output(
            [str(py), "-c", f"import importlib.metadata as m; print(m.version('{name}'))"],
            text=True,
        ).strip()
    return versions


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except Exception:
        return 0


def _tree(pid: int) -> list[int]:
    """A process and its direct children (MLServer and KServe may fork workers)."""
    try:
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except OSError:
        return [pid]


def _rss_kib(pid: int) -> int:
    """RSS of a process and its children, KiB."""
    total = 0
    pids = _tree(pid)
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Peer:
    """How to start one server kind for one model."""

    def __init__(
        self, label: str, start: Callable[[str, Path, int], tuple[list[str], dict[str, str], Path]]
    ):
        self.label = label
        self.start = start


def _ours(batch: bool) -> Callable[[str, Path, int], tuple[list[str], dict[str, str], Path]]:
    def start(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
        env = {
            "ONNXOPS_MODEL_URI": str(folder),
            "ONNXOPS_PORT": str(port),
            "ONNXOPS_HOST": "127.0.0.1",
            "ONNXOPS_LOG_LEVEL": "warning",
            "PYTHONPATH": str(REPO / "serving-image"),
        }
        if batch:
            env |= {"ONNXOPS_MAX_BATCH_SIZE": "32", "ONNXOPS_MAX_BATCH_LATENCY_MS": "2"}
        return [str(OUR_PY), "-m", "onnxops_serving"], env, REPO

    return start


def _kserve(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    cmd = [
        str(VENVS / "kserve" / "bin" / "python"), str(HERE / "peers" / "kserve_server.py"),
        "--model_name", model, "--model_path", str(folder / "model.onnx"),
        "--http_port", str(port), "--workers", "1",
    ]  # fmt: skip
    return cmd, {}, REPO


def _mlserver(batch: bool) -> Callable[[str, Path, int], tuple[list[str], dict[str, str], Path]]:
    def start(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
        root = WORK / f"mlserver-{model}-{'batch' if batch else 'plain'}"
        shutil.rmtree(root, ignore_errors=True)
        (root / model).mkdir(parents=True)
        shutil.copy(HERE / "peers" / "mlserver_runtime.py", root / model)
        settings = {
            "debug": False, "parallel_workers": 0, "host": "127.0.0.1",
            "http_port": port, "grpc_port": port + 1, "metrics_port": port + 2,
        }  # fmt: skip
        (root / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": model,
            "implementation": "mlserver_runtime.OnnxRuntimeModel",
            "parameters": {"uri": str(folder / "model.onnx")},
            "max_batch_size": 32 if batch else 0,
            "max_batch_time": 0.002 if batch else 0,
        }
        (root / model / "model-settings.json").write_text(json.dumps(model_settings))
        return [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", str(root)], {}, root

    return start


def _floor(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    return [str(OUR_PY), str(HERE / "peers" / "floor_server.py"), str(port), model], {}, REPO


PEERS = [
    Peer("onnxops", _ours(False)),
    Peer("onnxops+batch", _ours(True)),
    Peer("kserve", _kserve),
    Peer("mlserver", _mlserver(False)),
    Peer("mlserver+batch", _mlserver(True)),
    # Not a peer: uvicorn answering without a model, the cost of the transport alone.
    Peer("uvicorn-floor", _floor),
]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, lua: Path, conns: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency",
         "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }
    for pct in ("50", "99"):
        result[f"p{pct}_ms"] = _ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non2xx"] = float(bad.group(1)) if bad else 0.0
    result["socket_errors"] = errors.group(1) if errors else ""  # type: ignore[assignment]
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (live ones), seconds."""
    total = 0.0
    pids = _tree(pid)
    tick = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


class Running:
    """One started server: its process, URL, load script and measurements."""

    def __init__(self, peer: Peer, model: str, folder: Path, port: int) -> None:
        cmd, env, cwd = peer.start(model, folder, port)
        self.label = peer.label
        self.log = (WORK / f"{peer.label}-{model}.log").open("w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *cmd], env={**os.environ, **env}, cwd=cwd,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}/v2/models/{model}"
        self.rss_idle = 0
        self.rss_peak = 0
        self.runs: dict[int, list[dict[str, float]]] = {}

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 180
        while _get(self.url + "/ready") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not become ready; see {self.log.name}")
            time.sleep(0.2)

    def measure(self, lua: Path, conns: int, seconds: float) -> dict[str, float]:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                self.rss_peak = max(self.rss_peak, _rss_kib(self.proc.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        cpu0 = _cpu_seconds(self.proc.pid)
        point = wrk(self.url + "/infer", lua, conns, seconds)
        cpu = _cpu_seconds(self.proc.pid) - cpu0
        stop.set()
        sampler.join()
        point["cpu_us_per_req"] = cpu / max(point["requests"], 1) * 1e6
        self.runs.setdefault(conns, []).append(point)
        return point

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def bench_model(
    peers: list[Peer], model: str, folder: Path, conc: list[int], seconds: float, rounds: int
) -> dict[str, object]:
    """All servers up at once (idle ones cost no CPU); points interleaved round-robin so
    interference from other work on the machine falls on every server alike."""
    row = json.loads((folder / "row.json").read_text())
    body = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, len(row[0])], "datatype": "FP32", "data": row}]}
    )
    lua = WORK / f"{model}.lua"
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    servers = []
    try:
        for i, peer in enumerate(peers):
            servers.append(Running(peer, model, folder, PORT + 10 * i))
        for server in servers:
            server.wait_ready()
            wrk(server.url + "/infer", lua, 8, 2)  # warm-up
        time.sleep(1)
        for server in servers:
            server.rss_idle = _rss_kib(server.proc.pid)
        for c in conc:
            for _ in range(rounds):
                for server in servers:
                    server.measure(lua, c, seconds)
            for server in servers:
                runs = server.runs[c]
                print(f"  {server.label:15s} {model:7s} c={c:<3d} "
                      f"{_median([r['rps'] for r in runs]):8.0f} req/s  "
                      f"p50 {_median([r['p50_ms'] for r in runs]):7.2f} ms  "
                      f"p99 {_median([r['p99_ms'] for r in runs]):7.2f} ms  "
                      f"cpu {_median([r['cpu_us_per_req'] for r in runs]):6.0f} µs/req", flush=True)  # fmt: skip
        out: dict[str, object] = {}
        for server in servers:
            points = {}
            for c, runs in server.runs.items():
                points[str(c)] = {
                    key: _median([r[key] for r in runs])
                    for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "non2xx")
                } | {"rounds": runs}
            out[server.label] = {
                "rss_idle_kib": server.rss_idle,
                "rss_peak_kib": server.rss_peak,
                "points": points,
            }
        return out
    finally:
        for server in servers:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each point")
    parser.add_argument("--models", default="iris,forest,mlp")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats per point")
    parser.add_argument("--peers", default=",".join(p.label for p in PEERS))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    versions = ensure_venvs()
    models_dir = WORK / "models"
    if not (models_dir / "mlp" / "row.json").exists():
        _sh([str(OUR_PY), str(HERE / "models.py"), str(models_dir)])
    conc = [int(c) for c in args.concurrency.split(",")]
    wanted = args.peers.split(",")
    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "versions": versions,
        "models": {},
    }
    for model in args.models.split(","):
        folder = models_dir / model
        raw = subprocess.check_output(
            ["taskset", "-c", SERVER_CPU, str(OUR_PY), str(HERE / "raw.py"), str(folder), "3"],
            text=True,
        )
        entry: dict[str, object] = {"raw": json.loads(raw), "servers": {}}
        print(f"{model}: raw session.run {entry['raw']['mean_us']:.1f} µs/call", flush=True)  # type: ignore[index]
        peers = [p for p in PEERS if p.label in wanted]
        entry["servers"] = bench_model(peers, model, folder, conc, args.seconds, args.rounds)
        results["models"][model] = entry  # type: ignore[index]
    results["loadavg_after"] = os.getloadavg()
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {WORK / 'results.json'}")


if __name__ == "__main__":
    main()
