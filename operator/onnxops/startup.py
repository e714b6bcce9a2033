"""The operator's kopf settings, all in one `@kopf.on.startup` function."""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from onnxops import k8s
from onnxops.api import GROUP
from onnxops.config import config
from onnxops.pools import load_pools
from onnxops.remediation.guardrails import FleetLimit


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    cfg = config()
    # Progress and diff-base annotations under our own group, fixed from the first release:
    # renaming them later would make every resource look new and re-run its handlers.
    prefix = GROUP
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # Events name the operator, not kopf, as their source.
    settings.posting.reporting_component = "onnxops-operator"
    settings.posting.level = logging.INFO
    # Watches are re-established by the server before idle proxies or load balancers cut
    # them silently; the client timeout is a little longer so the server ends them first.
    settings.watching.server_timeout = cfg.watch_timeout_s
    settings.watching.client_timeout = cfg.watch_timeout_s + 30
    settings.watching.connect_timeout = 10
    # Two replicas share one peering object; only the active one handles resources.
    settings.peering.name = cfg.peering
    settings.peering.standalone = cfg.standalone
    settings.peering.mandatory = not cfg.standalone
    settings.peering.lifetime = cfg.peering_lifetime_s
    if cfg.peering_priority is not None:
        settings.peering.priority = cfg.peering_priority
    else:
        settings.peering.priority = random.randint(1, 1_000_000)
    # Handler retries without an explicit delay wait this long (errors we did not foresee).
    settings.execution.default_backoff = cfg.retry_base_s
    # Sync handlers run in threads; enough for a burst of resources without starving the API.
    settings.execution.max_workers = 8
    memo.pools = load_pools(cfg.pools_file)
    # One limit for every model this process heals (see OperatorConfig.fleet_disruptions).
    memo.fleet = FleetLimit(cfg.fleet_disruptions, cfg.fleet_window_s)
    k8s.api_client()  # fail at start, not at the first resource, when credentials are bad
    logger.info("pools: %s; serving image %s", ", ".join(sorted(memo.pools)), cfg.serving_image)
