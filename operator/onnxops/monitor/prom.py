"""The only place the operator talks to Prometheus (through prometheus-api-client).

Every failure (connection refused, timeout, a 4xx/5xx answer, a malformed body) becomes a
reading with an error and no values: the signals it feeds are *unknown*, never bad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from onnxops.monitor.queries import Query

Key = tuple[str, str]
"""(namespace, ModelDeployment name) or (namespace, pod name), after the query's grouping."""


@dataclass(frozen=True)
class PromSettings:
    """Where Prometheus is and how to reach it."""

    url: str
    bearer_token_file: str | None = None
    ca_file: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Reading:
    """An instant query's values by key; NaN (say, 0/0 with no traffic) is left out."""

    values: dict[Key, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class History:
    """A range query's samples by key, oldest first."""

    series: dict[Key, list[tuple[float, float]]] = field(default_factory=dict)
    error: str | None = None


def _key(labels: dict[str, str], query: Query, model_label: str) -> Key | None:
    name = labels.get(model_label if query.grouping == "model" else "pod")
    namespace = labels.get("namespace")
    return (namespace, name) if namespace and name else None


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


class PrometheusReader:
    """Instant and range queries; counts queries and errors for the operator's own metrics."""

    def __init__(self, settings: PromSettings, model_label: str) -> None:
        self.settings = settings
        self.model_label = model_label
        self.queries = 0
        self.errors = 0
        session = requests.Session()
        session.verify = settings.ca_file or True
        # No retries inside a cycle: the next cycle is the retry, and a down Prometheus must
        # cost one refused connection per query, not a back-off per query.
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            session=session,
            retry=Retry(total=0),
            timeout=settings.timeout_s,
        )

    def _headers(self) -> dict[str, str] | None:
        # Read at every query: a projected service-account token is rotated under our feet.
        if not self.settings.bearer_token_file:
            return None
        token = Path(self.settings.bearer_token_file).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
        self.queries += 1
        try:
            self._client.headers = self._headers()
            result = fn(*args, **kwargs)
            if not isinstance(result, list):
                raise ValueError(f"unexpected answer {type(result).__name__}")
            return result, None
        except Exception as exc:  # any failure to read is "unknown", never a crash
            self.errors += 1
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return [], f"{type(exc).__name__}: {text[:300]}"

    def instant(self, query: Query, at: float | None = None) -> Reading:
        params = {"time": f"{at:.3f}"} if at is not None else None
        result, error = self._call(self._client.custom_query, query.promql, params=params)
        if error:
            return Reading(error=error)
        values: dict[Key, float] = {}
        for item in result:
            key = _key(item.get("metric", {}), query, self.model_label)
            value = _number((item.get("value") or [None, None])[1])
            if key is not None and value is not None:
                values[key] = value
        return Reading(values)

    def instant_by(
        self, promql: str, labels: tuple[str, ...], at: float | None = None
    ) -> tuple[dict[tuple[str, ...], float], str | None]:
        """An instant query's values keyed by the values of `labels` (series missing one of
        them are left out), and the error when it could not be read."""
        params = {"time": f"{at:.3f}"} if at is not None else None
        result, error = self._call(self._client.custom_query, promql, params=params)
        values: dict[tuple[str, ...], float] = {}
        for item in result:
            metric = item.get("metric", {})
            key = tuple(str(metric.get(label, "")) for label in labels)
            value = _number((item.get("value") or [None, None])[1])
            if all(key) and value is not None:
                values[key] = value
        return values, error

    def history(self, query: Query, *, start: float, end: float, step_s: float) -> History:
        result, error = self._call(
            self._client.custom_query_range,
            query.promql,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step_s:g}s",
        )
        if error:
            return History(error=error)
        series: dict[Key, list[tuple[float, float]]] = {}
        for item in result:
            key = _key(item.get("metric", {}), query, self.model_label)
            if key is None:
                continue
            points = [
                (float(t), v)
                for t, raw in item.get("values", [])
                if (v := _number(raw)) is not None
            ]
            series[key] = points
        return History(series)

    def close(self) -> None:
        self._client.close()
