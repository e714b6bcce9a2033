"""The operator's kopf settings, all in one `@kopf.on.startup` function."""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from onnxops import k8s, supply
from onnxops.api import GROUP
from onnxops.bookkeeping import SafeProgressStorage, SpecDiffBaseStorage
from onnxops.config import config
from onnxops.outage import outage
from onnxops.pools import load_pools


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    cfg = config()
    # Progress and diff-base annotations under our own group, fixed from the first release:
    # renaming them later would make every resource look new and re-run its handlers.
    # Ours keep only the spec (large user annotations cannot make an object undeletable) and
    # survive an unreadable record (see bookkeeping.py).
    prefix = GROUP
    settings.persistence.progress_storage = SafeProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = SpecDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # urllib3 logs each of its own connection retries (three per failed call) while the
    # apiserver is away; k8s.py says once that it is unavailable, and when it is back.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # Events name the operator, not kopf, as their source.
    settings.posting.reporting_component = "onnxops-operator"
    settings.posting.level = logging.INFO
    # Watches are re-established by the server before idle proxies or load balancers cut
    # them silently; the client timeout is a little longer so the server ends them first.
    settings.watching.server_timeout = cfg.watch_timeout_s
    settings.watching.client_timeout = cfg.watch_timeout_s + 30
    settings.watching.connect_timeout = 10
    k8s.api_client()  # fail at start, not at the first resource, when credentials are bad
    # Two replicas share one peering object; only the active one handles resources.
    # `kopf run --standalone` has already set standalone: never turned back off here.
    settings.peering.standalone = settings.peering.standalone or cfg.standalone
    settings.peering.lifetime = cfg.peering_lifetime_s
    if cfg.peering_priority is not None:
        settings.peering.priority = cfg.peering_priority
    else:
        settings.peering.priority = random.randint(1, 1_000_000)
    if not settings.peering.standalone:
        settings.peering.name = cfg.peering
        # kopf pauses silently, for good, on a mandatory peering object that does not exist:
        # create it (the replicas then share it); without kopf's CRD there is no peering.
        namespaces = [] if settings.peering.clusterwide else cfg.namespaces.split(",")
        settings.peering.mandatory = k8s.ensure_peering(cfg.peering, [n for n in namespaces if n])
        if not settings.peering.mandatory:
            settings.peering.standalone = True
            logger.warning(
                "no ClusterKopfPeering CRD (crds/kopfpeering.yaml): running standalone; "
                "a second replica would handle the same resources"
            )
    memo.peering = (
        "standalone"
        if settings.peering.standalone
        else f"peering {settings.peering.name} (priority {settings.peering.priority})"
    )
    # Handler retries without an explicit delay wait this long (errors we did not foresee).
    settings.execution.default_backoff = cfg.retry_base_s
    # Sync handlers run in threads; enough for a burst of resources without starving the API.
    settings.execution.max_workers = 8
    memo.pools = load_pools(cfg.pools_file)
    # Nodes and bound pods for placement, listed once and then watched (supply.py).
    supply.start()
    logger.info(
        "pools: %s; serving image %s; %s",
        ", ".join(sorted(memo.pools)),
        cfg.serving_image,
        memo.peering,
    )


@kopf.on.cleanup()
def stop_supply(**_: Any) -> None:
    supply.stop()


@kopf.on.probe(id="peering")
def peering_mode(memo: kopf.Memo, **_: Any) -> str:
    """The liveness endpoint's JSON says how this replica coordinates with others..."""
    return str(memo.get("peering", "starting"))


@kopf.on.probe(id="api")
def api_state(**_: Any) -> str:
    """...and whether the operator's own calls reach the apiserver."""
    return outage.describe()
