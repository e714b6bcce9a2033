"""Real resource limits for the pod runner's containers: one cgroup per pod container.

Memory limit → the kernel OOM-kills the process; CPU limit → a CFS quota (period 100 ms), so a
process over it is throttled; CPU request → shares (v1) or weight (v2). The same numbers the
kubelet writes, and the same files cAdvisor reads back (`stats`).

Three modes, picked once per runner by `detect()`:
- ``v1``: the memory, cpu and cpuacct hierarchies under /sys/fs/cgroup (this machine);
- ``v2``: the unified hierarchy with the memory and cpu controllers enabled;
- ``watchdog``: no writable cgroups. Memory keeps its observable behaviour (the runner SIGKILLs
  a process group whose RSS passes the limit and reports OOMKilled), CPU is NOT capped; the
  mode is logged and shown by ``devcluster status`` so nobody mistakes it for the real thing.

A container's cgroup lives as long as its pod (like the kubelet's pod cgroup), so counters such
as OOM kills accumulate across restarts of the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000  # the kubelet's default cpuCFSQuotaPeriod
V1_CONTROLLERS = ("memory", "cpu", "cpuacct")
# cpu.shares for a container with no CPU request (the kubelet's MinShares).
MIN_SHARES = 2


@dataclass(frozen=True)
class Limits:
    """What the kubelet applies for one container: CPU in millicores, memory in bytes."""

    cpu_request_m: int | None = None
    cpu_limit_m: int | None = None
    memory_limit: int | None = None

    @property
    def shares(self) -> int:
        # The kubelet's MilliCPUToShares: 1024 shares per CPU, at least MinShares.
        return max(MIN_SHARES, (self.cpu_request_m or 0) * 1024 // 1000)

    @property
    def quota_us(self) -> int:
        """CFS quota in microseconds per period; -1 = unlimited."""
        if not self.cpu_limit_m:
            return -1
        return max(1000, self.cpu_limit_m * CFS_PERIOD_US // 1000)  # the kernel's minimum: 1 ms


@dataclass(frozen=True)
class Stats:
    """One read of a container's cgroup, in the units cAdvisor exports."""

    cpu_usage_s: float = 0.0
    cfs_periods: int = 0
    cfs_throttled_periods: int = 0
    cfs_throttled_s: float = 0.0
    memory_usage: int = 0
    working_set: int = 0
    rss: int = 0
    oom_kills: int = 0


class LimitError(RuntimeError):
    """A limit could not be applied (e.g. a memory limit below what the process uses)."""


@dataclass(frozen=True)
class Mode:
    name: str  # v1 | v2 | watchdog
    reason: str  # why this mode (for logs and `devcluster status`)
    base: str = ""  # our own cgroup path, under which containers' cgroups are made

    @property
    def enforces_cpu(self) -> bool:
        return self.name != "watchdog"


def _own_path(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy ("" for v2's unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def _writable(directory: Path) -> bool:
    probe = directory / f"devcluster-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def detect(root: Path = ROOT) -> Mode:
    """The best mode this machine allows; ``DEVCLUSTER_CGROUPS=watchdog`` forces the fallback."""
    if os.environ.get("DEVCLUSTER_CGROUPS") == "watchdog":
        return Mode("watchdog", "forced by DEVCLUSTER_CGROUPS=watchdog; CPU is NOT capped")
    if all((root / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        bases = {c: root / c / _own_path(c).lstrip("/") for c in V1_CONTROLLERS}
        if all(_writable(b) for b in bases.values()):
            return Mode("v1", "cgroup v1 memory, cpu, cpuacct writable", "")
        return Mode("watchdog", "cgroup v1 is mounted read-only; CPU is NOT capped")
    unified = root if (root / "cgroup.controllers").exists() else root / "unified"
    if (unified / "cgroup.controllers").exists():
        own = unified / _own_path("").lstrip("/")
        enabled = (own / "cgroup.subtree_control").read_text().split() if own.exists() else []
        if {"memory", "cpu"} <= set(enabled) and _writable(own):
            return Mode("v2", "cgroup v2 with memory and cpu controllers", str(own))
        return Mode("watchdog", "cgroup v2 lacks writable memory+cpu controllers; CPU NOT capped")
    return Mode("watchdog", "no cgroup hierarchy found; CPU is NOT capped")


def _read_int(path: Path, default: int = 0) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return default
    return default if text == "max" else int(text)


def _read_kv(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}


class ContainerCgroup:
    """The cgroup(s) of one pod container; ``join()`` runs in the child before exec."""

    def __init__(self, mode: Mode, name: str, root: Path = ROOT) -> None:
        self.mode = mode
        self.name = name
        self.limits = Limits()
        self._pgid: int | None = None  # watchdog mode: the process group to measure / kill
        self._watchdog_ooms = 0
        self._cpu_ticks_done = 0.0  # watchdog mode: CPU of earlier runs of the process
        if mode.name == "v1":
            self.dirs = {
                c: root / c / _own_path(c).lstrip("/") / "devcluster" / name for c in V1_CONTROLLERS
            }
        elif mode.name == "v2":
            self.dirs = {"unified": Path(mode.base) / "devcluster" / name}
        else:
            self.dirs = {}

    @property
    def id(self) -> str:
        """The cgroup path, cAdvisor's ``id`` label."""
        return f"/devcluster/{self.name}"

    def create(self, limits: Limits) -> None:
        for directory in self.dirs.values():
            if self.mode.name == "v2":
                directory.parent.mkdir(exist_ok=True)
                # Children of the devcluster folder get the memory and cpu controllers.
                (directory.parent / "cgroup.subtree_control").write_text("+memory +cpu")
            directory.mkdir(parents=True, exist_ok=True)
        if self.mode.name == "v1":
            # No swap: over the limit means OOM, as on a kubelet's node (swap off by default).
            with contextlib.suppress(OSError):
                (self.dirs["memory"] / "memory.swappiness").write_text("0")
        self.apply(limits, current_usage=0)

    def apply(self, limits: Limits, *, current_usage: int | None = None) -> None:
        """Write ``limits``; a memory limit below current use raises `LimitError` (and is not
        written), as the kubelet refuses to shrink a limit under the working set."""
        usage = self.stats().memory_usage if current_usage is None else current_usage
        if limits.memory_limit is not None and limits.memory_limit < usage:
            raise LimitError(
                f"attempting to set memory limit ({limits.memory_limit}) "
                f"below current usage ({usage})"
            )
        if self.mode.name == "v1":
            mem, cpu = self.dirs["memory"], self.dirs["cpu"]
            limit = limits.memory_limit if limits.memory_limit is not None else -1
            try:
                (mem / "memory.limit_in_bytes").write_text(str(limit))
            except OSError as error:  # EBUSY: the kernel could not reclaim below the limit
                raise LimitError(f"memory limit {limit} not applied: {error}") from error
            (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(limits.quota_us))
            (cpu / "cpu.shares").write_text(str(limits.shares))
        elif self.mode.name == "v2":
            d = self.dirs["unified"]
            max_mem = str(limits.memory_limit) if limits.memory_limit is not None else "max"
            try:
                (d / "memory.max").write_text(max_mem)
            except OSError as error:
                raise LimitError(f"memory limit {max_mem} not applied: {error}") from error
            (d / "memory.swap.max").write_text("0")
            quota = "max" if limits.quota_us < 0 else str(limits.quota_us)
            (d / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            # The kubelet's shares → weight conversion (cgroup v2).
            (d / "cpu.weight").write_text(str(1 + ((limits.shares - 2) * 9999) // 262142))
        self.limits = limits

    def join(self) -> None:
        """Move the calling process into the cgroup (runs in the child, before exec)."""
        pid = str(os.getpid())
        for directory in self.dirs.values():
            (directory / "cgroup.procs").write_text(pid)

    def attach(self, pgid: int) -> None:
        """Remember the process group (the watchdog measures and kills it)."""
        if self._pgid is not None:
            self._cpu_ticks_done += self._group_cpu_s(self._pgid)
        self._pgid = pgid

    def oom_kills(self) -> int:
        if self.mode.name == "v1":
            return _read_kv(self.dirs["memory"] / "memory.oom_control").get("oom_kill", 0)
        if self.mode.name == "v2":
            return _read_kv(self.dirs["unified"] / "memory.events").get("oom_kill", 0)
        return self._watchdog_ooms

    def enforce(self) -> bool:
        """Watchdog mode: SIGKILL the group if its RSS passed the memory limit (True if so)."""
        if self.mode.name != "watchdog" or self._pgid is None or not self.limits.memory_limit:
            return False
        if _group_rss(self._pgid) <= self.limits.memory_limit:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._pgid, signal.SIGKILL)
        self._watchdog_ooms += 1
        return True

    def stats(self) -> Stats:
        if self.mode.name == "v1":
            mem, cpu, acct = self.dirs["memory"], self.dirs["cpu"], self.dirs["cpuacct"]
            cpu_stat, mem_stat = _read_kv(cpu / "cpu.stat"), _read_kv(mem / "memory.stat")
            usage = _read_int(mem / "memory.usage_in_bytes")
            return Stats(
                cpu_usage_s=_read_int(acct / "cpuacct.usage") / 1e9,
                cfs_periods=cpu_stat.get("nr_periods", 0),
                cfs_throttled_periods=cpu_stat.get("nr_throttled", 0),
                cfs_throttled_s=cpu_stat.get("throttled_time", 0) / 1e9,
                memory_usage=usage,
                working_set=max(0, usage - mem_stat.get("total_inactive_file", 0)),
                rss=mem_stat.get("total_rss", 0),
                oom_kills=self.oom_kills(),
            )
        if self.mode.name == "v2":
            d = self.dirs["unified"]
            cpu_stat, mem_stat = _read_kv(d / "cpu.stat"), _read_kv(d / "memory.stat")
            usage = _read_int(d / "memory.current")
            return Stats(
                cpu_usage_s=cpu_stat.get("usage_usec", 0) / 1e6,
                cfs_periods=cpu_stat.get("nr_periods", 0),
                cfs_throttled_periods=cpu_stat.get("nr_throttled", 0),
                cfs_throttled_s=cpu_stat.get("throttled_usec", 0) / 1e6,
                memory_usage=usage,
                working_set=max(0, usage - mem_stat.get("inactive_file", 0)),
                rss=mem_stat.get("anon", 0),
                oom_kills=self.oom_kills(),
            )
        rss = _group_rss(self._pgid) if self._pgid is not None else 0
        cpu_s = self._cpu_ticks_done + (self._group_cpu_s(self._pgid) if self._pgid else 0.0)
        return Stats(
            cpu_usage_s=cpu_s,
            memory_usage=rss,
            working_set=rss,
            rss=rss,
            oom_kills=self._watchdog_ooms,
        )

    @staticmethod
    def _group_cpu_s(pgid: int) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(utime + stime for utime, stime in _group_times(pgid)) / ticks

    def remove(self) -> None:
        """Delete the cgroup once its processes are gone (retried briefly: exits are async)."""
        for directory in self.dirs.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _group_rss(pgid: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in _group_pids(pgid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
    return total


def _group_times(pgid: int) -> list[tuple[int, int]]:
    out = []
    for pid in _group_pids(pgid):
        with contextlib.suppress(OSError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            out.append((int(fields[11]), int(fields[12])))
    return out
