"""kopf wiring of the monitor: a kopf index of ModelDeployments and one operator-level loop
that evaluates the ones due (see `monitor/cycle.py`), plus the operator's own /metrics.

Why one loop over an index rather than a kopf timer per ModelDeployment: a timer per resource
would ask Prometheus its own queries, so the cost would grow as queries x models and 1,000
models at 30 s would be ~300 queries a second; the loop asks one query per signal for all
models due in the same slot and shares the answer. The index gives the loop every
ModelDeployment as the watch last saw it, without reading them again, and kopf keeps it up
to date (and drops deleted ones) for free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from onnxops import k8s, reconcile
from onnxops.api import GROUP, PLURAL, VERSION
from onnxops.config import OperatorConfig, config
from onnxops.monitor.cycle import Monitor
from onnxops.monitor.detect import Track
from onnxops.monitor.metrics import OperatorMetrics
from onnxops.outage import unreachable
from onnxops.remediation.guardrails import FleetLimit
from onnxops.remediation.hook import Healer
from onnxops.rollout.cycle import Rollouts

log = logging.getLogger("onnxops.monitor")


@kopf.index(GROUP, VERSION, PLURAL)
def monitored_models(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every ModelDeployment by (namespace, name), as last seen by the watch — without its
    managedFields, which nothing here reads and which are most of a small object's size."""
    kept = dict(body)
    meta = dict(kept.get("metadata") or {})
    meta.pop("managedFields", None)
    kept["metadata"] = meta
    return {(namespace or "", name or ""): kept}


def _snapshot(index: kopf.Index[Any, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    bodies = {}
    for key, store in index.items():
        for body in store:  # one per key: the key is the object's identity
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            # Not reconciled yet: nothing runs to watch, and a status write now would only
            # race the create handler's first one.
            if not (body.get("status") or {}).get(
                "observedGeneration"
            ):  # None, or 0 (the CRD's default)
                continue
            bodies[key] = body
    return bodies


def peering_allows(peering: Mapping[str, Any] | None, priority: int, now: datetime) -> bool:
    """Whether this replica is the active one, by kopf's own rule: no live peer of a higher
    priority and none other of the same (kopf pauses both then).

    kopf pauses a standby's watches, but its index keeps the last bodies it saw, so without
    this check a standby's monitor would write stale status and repeat every Event."""
    same = 0
    for info in ((peering or {}).get("status") or {}).values():
        try:
            seen = datetime.fromisoformat(str(info["lastseen"]))
            alive = seen + timedelta(seconds=int(info.get("lifetime", 60))) > now
            other = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if not alive:
            continue
        if other > priority:
            return False
        same += other == priority
    return same <= 1  # ourselves


def _active(settings: kopf.OperatorSettings, cfg: OperatorConfig) -> bool:
    if settings.peering.standalone:
        return True
    namespaces = [n for n in cfg.namespaces.split(",") if n]
    name = settings.peering.name
    path = (
        f"/apis/kopf.dev/v1/namespaces/{namespaces[0]}/kopfpeerings/{name}"
        if namespaces
        else f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"
    )
    try:
        peering = k8s.request("GET", path)
    except Exception:  # unknown: rather skip a cycle than write twice
        return False
    return peering_allows(peering, settings.peering.priority, datetime.now(UTC))


async def monitor_loop(
    monitor: Monitor,
    index: kopf.Index[Any, Any],
    settings: kopf.OperatorSettings,
    rollouts: Rollouts | None = None,
) -> None:
    """Wake every tick; evaluate whatever is due, in a worker thread (the queries and API
    calls block), so kopf's own handlers keep running meanwhile."""
    cfg = monitor.cfg
    while True:
        try:
            bodies = _snapshot(index)
            now = time.time()
            due = monitor.due(bodies, now)
            rolling = rollouts is not None and any(
                (b.get("spec") or {}).get("rollout") for b in bodies.values()
            )
            active: bool = (bool(due) or rolling) and await asyncio.to_thread(
                _active, settings, cfg
            )
            if active and due:
                result = await asyncio.to_thread(monitor.run_cycle, [bodies[k] for k in due], now)
                log.debug("monitor cycle: %s", result)
            if active and rollouts is not None and rolling:
                await asyncio.to_thread(rollouts.run, bodies, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop outlives any one bad cycle
            if unreachable(exc):  # said once by the outage log; one line here, no traceback
                log.info("monitor cycle skipped: %s", exc)
            else:
                log.exception("monitor cycle failed")
        await asyncio.sleep(cfg.monitor_tick_s)


@kopf.on.startup()
async def start_monitor(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    # kopf passes every index to startup handlers by its name (pre-populated, then filled).
    index: kopf.Index[Any, Any] = kwargs["monitored_models"]
    cfg = config()
    metrics = OperatorMetrics()
    if cfg.metrics_port:
        metrics.serve(cfg.metrics_port)
    memo.monitor = Monitor(cfg, metrics)
    # Heal after each detection (pools come from startup.configure). The one place heal is
    # wired to the core: it re-applies desired state through reconcile, handed in here.
    pools = memo.pools
    # One limit for every model this process heals (see OperatorConfig.fleet_disruptions).
    memo.fleet = FleetLimit(cfg.fleet_disruptions, cfg.fleet_window_s)
    memo.monitor.hooks.append(
        Healer(
            pools,
            memo.fleet,
            lambda body: reconcile.reconcile(body, pools, cfg),
            registry=metrics.registry,
            unreadable=lambda key: memo.monitor.tracks.get(key, Track()).unreadable,
        )
    )
    # Rollouts share the monitor's Prometheus client and re-apply through reconcile too.
    memo.rollouts = Rollouts(
        memo.monitor.reader,
        lambda body: reconcile.reconcile(body, pools, cfg),
        model_label=cfg.prometheus_model_label,
        window=cfg.monitor_rate_window,
    )
    memo.monitor_task = asyncio.create_task(
        monitor_loop(memo.monitor, index, settings, memo.rollouts), name="onnxops monitor"
    )
    log.info(
        "monitor: %s",
        f"Prometheus at {cfg.prometheus_url}" if cfg.prometheus_url else "off (no URL)",
    )


@kopf.on.cleanup()
async def stop_monitor(memo: kopf.Memo, **_: Any) -> None:
    monitor = getattr(memo, "monitor", None)
    if monitor is not None:
        monitor.stopping.set()  # the cycle in flight (in a thread) stops starting writes
    task = getattr(memo, "monitor_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    monitor = getattr(memo, "monitor", None)
    if monitor is not None and monitor.reader is not None:
        monitor.reader.close()
