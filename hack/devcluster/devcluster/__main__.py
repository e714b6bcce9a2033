"""``python -m devcluster up|down|status|env|prometheus|podrunner`` (PYTHONPATH=hack/devcluster).

``make cluster-up`` / ``cluster-down`` / ``cluster-status`` / ``cluster-env`` call the first four.
``up`` starts the control plane, the KWOK nodes and the pod runner (the kubelet of serving pods)
as recorded processes; the state directory is ``.devcluster/`` or ``$DEVCLUSTER_STATE``.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path

from . import binaries, cgroups, controlplane, karpenter, processes, prometheus
from . import cluster as cluster_state
from .binaries import BinariesMissing
from .nodes import default_pools
from .podrunner import PodRunner, default_command, run_forever

REPO = Path(__file__).resolve().parents[3]
PACKAGE_DIR = Path(__file__).resolve().parents[1]
POD_RUNNER = "podrunner"


def _size(text: str) -> tuple[str, str]:
    cpu, _, memory = text.partition(":")
    if not cpu or not memory:
        raise argparse.ArgumentTypeError(f"expected CPU:MEMORY such as 8:32Gi, got {text!r}")
    return cpu, memory


def _cluster(state_dir: Path) -> cluster_state.Cluster:
    cluster = cluster_state.load(state_dir)
    if cluster is None or not any(cluster.running().values()):
        raise SystemExit(f"no devcluster running from {state_dir} (start it: make cluster-up)")
    return cluster


def up(args: argparse.Namespace) -> int:
    cluster = cluster_state.load(args.state_dir)
    if cluster is not None and cluster.complete and cluster.api().ready():
        # A second `make cluster-up` is a no-op, like `minikube start`; a partly running one
        # still fails in controlplane.start and asks for `make cluster-down`.
        print(f"devcluster already running at {cluster.server} (make cluster-down to restart it)")
    else:
        pools = default_pools(args.cloud, args.edge, args.cloud_size, args.edge_size)
        if args.autoscaler == "karpenter":
            binaries.require_karpenter()  # before anything starts: a missing build fails fast
        cluster = controlplane.start(args.state_dir, pools=pools)
        try:
            if args.autoscaler == "karpenter":
                extra = {"cloud": args.autoscaler_nodes, "edge": args.autoscaler_nodes}
                karpenter.start(cluster, pools, extra=extra)
            _start_pod_runner(cluster)
        except BaseException:
            cluster.stop()
            raise
        mib = cluster.rss_bytes() / 2**20
        print(
            f"devcluster ready in {cluster.started_in_s:.1f}s at {cluster.server} ({mib:.0f} MiB RSS)"
        )
    _print_env(cluster)
    return 0


def _start_pod_runner(cluster: cluster_state.Cluster) -> None:
    """The pod runner as one more recorded process: stopped first by ``down`` (reverse order),
    while the apiserver still answers its last status writes."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_DIR)}
    argv = [sys.executable, "-m", "devcluster", "--state-dir", str(cluster.state_dir), POD_RUNNER]
    log = cluster.state_dir / "logs" / "podrunner.log"
    _child, record = processes.start(POD_RUNNER, argv, log, env=env, cwd=REPO)
    cluster.processes.append(record)
    cluster.save()
    # It lists pods at once; a runner that cannot start (no cluster, bad env) exits in ~1 s.
    time.sleep(1.0)
    if not processes.is_running(record):
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise cluster_state.ClusterError(f"the pod runner exited: {' / '.join(tail)}")


def _print_env(cluster: cluster_state.Cluster) -> None:
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.bin_dir}:$PATH  # the built kubectl")


def env(args: argparse.Namespace) -> int:
    """Only the two export lines (``eval "$(make -s cluster-env)"``)."""
    _print_env(_cluster(args.state_dir))
    return 0


def down(args: argparse.Namespace) -> int:
    cluster = cluster_state.load(args.state_dir)
    if cluster is None:
        print(f"no devcluster recorded in {args.state_dir}")
        return 0
    cluster.stop()
    print("devcluster stopped")
    return 0


def status(args: argparse.Namespace) -> int:
    cluster = cluster_state.load(args.state_dir)
    if cluster is None:
        print(f"no devcluster recorded in {args.state_dir}")
        return 1
    running = cluster.running()
    for record in cluster.processes:
        state = "running" if running[record.name] else "STOPPED"
        print(f"{record.name:24} pid {record.pid:<8} {state}")
    print(f"server {cluster.server}  kubeconfig {cluster.kubeconfig}")
    print(f"RSS {cluster.rss_bytes() / 2**20:.0f} MiB; started in {cluster.started_in_s:.1f}s")
    mode = cgroups.detect()
    print(f"pod runner resource limits: {mode.name} ({mode.reason})")
    ok = cluster.complete and cluster.api().ready()
    print(
        "ready" if ok else "NOT ready" + ("" if cluster.started_in_s else " (start did not finish)")
    )
    return 0 if ok else 1


def prom(args: argparse.Namespace) -> int:
    server = prometheus.start(
        args.work_dir.resolve(), scrape_interval=args.scrape_interval, tie_to_parent=True
    )
    print(f"prometheus at {server.url}; targets in {server.targets.directory}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def _hold_runner_lock(state_dir: Path) -> int:
    """One pod runner per devcluster, as one kubelet per node: a second would start every
    serving pod again, lose the bind to the first and report the pod crash-looping. The lock
    is the kernel's (flock), so it goes with the process however that ends."""
    path = state_dir / "podrunner.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SystemExit(
            f"a pod runner (pid {holder}) already serves the devcluster in {state_dir}; "
            "two would run every serving pod twice"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd  # held open (and locked) for the life of the process


def podrunner(args: argparse.Namespace) -> int:
    cluster = _cluster(args.state_dir)
    _hold_runner_lock(args.state_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runner = PodRunner(
        cluster.api(),
        prometheus.ScrapeTargets(args.targets_dir.resolve()),
        args.state_dir / "logs" / "pods",
        command=args.command or None,
        namespace=args.namespace,
        volumes_dir=args.state_dir / "pods",
    )
    run_forever(runner)
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so the foreground commands stop what they started.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__)
    state = Path(os.environ.get("DEVCLUSTER_STATE") or REPO / ".devcluster")
    parser.add_argument("--state-dir", type=Path, default=state)
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("up", help="start etcd, the control plane, KWOK and the node pools")
    p.add_argument("--cloud", type=int, default=3, help="cloud nodes (default 3)")
    p.add_argument("--edge", type=int, default=2, help="edge nodes (default 2)")
    p.add_argument("--cloud-size", type=_size, default=("8", "32Gi"), metavar="CPU:MEM")
    p.add_argument("--edge-size", type=_size, default=("2", "2Gi"), metavar="CPU:MEM")
    p.add_argument(
        "--autoscaler",
        choices=("none", "karpenter"),
        default=os.environ.get("DEVCLUSTER_AUTOSCALER") or "none",
        help="karpenter: run Karpenter's KWOK provider with a NodePool per pool "
        "(build it first: make cluster-build AUTOSCALER=karpenter)",
    )
    p.add_argument(
        "--autoscaler-nodes",
        type=int,
        default=2,
        metavar="N",
        help="nodes each NodePool may add beyond the static ones (default 2)",
    )
    p.set_defaults(func=up)
    sub.add_parser("down", help="stop exactly the processes `up` recorded").set_defaults(func=down)
    sub.add_parser("status", help="processes, RSS and /readyz").set_defaults(func=status)
    sub.add_parser("env", help="print the KUBECONFIG and PATH exports").set_defaults(func=env)
    p = sub.add_parser("prometheus", help="run Prometheus with file_sd until Ctrl-C")
    p.add_argument("--work-dir", type=Path, default=state / "prometheus")
    p.add_argument("--scrape-interval", default="1s")
    p.set_defaults(func=prom)
    p = sub.add_parser("podrunner", help="run serving processes for serving pods until Ctrl-C")
    p.add_argument("--targets-dir", type=Path, default=state / "prometheus" / "targets")
    p.add_argument("--namespace", help="only this namespace (default: all)")
    p.add_argument(
        "command", nargs="*", help=f"process per pod (default: {' '.join(default_command())})"
    )
    p.set_defaults(func=podrunner)
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    try:
        return int(args.func(args))
    except (BinariesMissing, cluster_state.ClusterError, TimeoutError, FileNotFoundError) as error:
        print(f"devcluster: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
