"""Shadow mirroring: copy a share of inference requests to a candidate version, compare answers.

The hot path only samples and enqueues (``offer``); a bounded queue drops what it cannot
hold (counted), and background workers send the copies, so the user's request is never
delayed or failed by the candidate. Outcomes go to ``onnxops_shadow_requests_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import numpy as np
import orjson

from . import codec
from .metrics import ServingMetrics
from .mirrorconfig import ConfigFile, MirrorConfig
from .peer import PeerError, PeerPool
from .settings import ServingSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # the contract: the file is checked at most once a second
Job = tuple[dict[str, np.ndarray], list[np.ndarray]]


class Mirror:
    """Mirrors the requests of one data plane to the targets its config file names."""

    def __init__(
        self,
        settings: ServingSettings,
        metrics: ServingMetrics,
        *,
        model_name: str,
        task: str,
        input_types: dict[str, str],
    ) -> None:
        self.config: MirrorConfig | None = None
        self._file = ConfigFile(settings.mirror_config, settings.mirror_address_rewrite)
        self._metrics = metrics
        self._model_name = model_name
        self._task = task
        self._input_types = input_types
        self._timeout = settings.mirror_timeout_s
        self._workers = settings.mirror_concurrency
        self._queue: asyncio.Queue[Job] = asyncio.Queue(settings.mirror_queue_size)
        self._pool = PeerPool()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- the hot path ---------------------------------------------------------------------

    def offer(self, inputs: dict[str, np.ndarray], outputs: list[np.ndarray]) -> None:
        """A served request: maybe queue its copy. Never raises, never waits."""
        config = self.config
        if config is None or (config.percent < 100 and random.random() * 100 >= config.percent):
            return
        try:
            self._queue.put_nowait((inputs, outputs))
        except asyncio.QueueFull:
            self._metrics.count_shadow(config.candidate_version, "dropped")

    # ---- background -----------------------------------------------------------------------

    def start(self) -> None:
        self.reload()
        self._tasks = [asyncio.create_task(self._watch())]
        self._tasks += [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pool.close()

    def reload(self) -> None:
        changed, config = self._file.poll()
        if not changed:
            return
        self.config = config
        self._pool.keep_only(set(config.targets) if config else set())
        if config is not None:
            # Every outcome from zero, so rate() over them is defined from the first scrape.
            for outcome in ("agree", "disagree", "error", "dropped"):
                self._metrics.count_shadow(config.candidate_version, outcome, 0)
        else:
            self._drain()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                self.reload()
            except Exception:  # never let the watcher die: mirroring would freeze as it is
                log.exception("shadow mirror: reading %s failed", self._file.path)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            config = self.config
            if config is None:
                continue  # switched off while it waited
            try:
                await self._mirror(config, *job)
            except Exception:
                log.exception("shadow mirror: unexpected error")
                self._metrics.count_shadow(config.candidate_version, "error")

    async def _mirror(
        self, config: MirrorConfig, inputs: dict[str, np.ndarray], outputs: list[np.ndarray]
    ) -> None:
        host, port = config.next_target()
        body, header_length = self._request(inputs)
        path = f"/v2/models/{config.model or self._model_name}/infer"
        headers = {"Content-Type": "application/octet-stream"}
        headers["Inference-Header-Content-Length"] = str(header_length)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                status, answer = await self._pool.post(host, port, path, body, headers)
        except (OSError, PeerError, TimeoutError) as exc:
            log.debug("shadow mirror to %s:%d failed: %r", host, port, exc)
            self._metrics.count_shadow(config.candidate_version, "error")
            return
        self._metrics.observe_shadow(config.candidate_version, time.perf_counter() - started)
        if status != 200:
            self._metrics.count_shadow(config.candidate_version, "error")
            return
        try:
            theirs = _outputs(answer)
        except ValueError:
            self._metrics.count_shadow(config.candidate_version, "error")
            return
        same = agrees(self._task, outputs, theirs, config.tolerance)
        self._metrics.count_shadow(config.candidate_version, "agree" if same else "disagree")

    def _request(self, inputs: dict[str, np.ndarray]) -> tuple[bytes, int]:
        """The inputs as an OIP v2 infer body with binary tensors (exact, and cheap to make)."""
        described, blobs = [], []
        for name, arr in inputs.items():
            datatype = self._input_types[name]
            blob = codec.raw_bytes(arr, datatype)
            described.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": list(arr.shape),
                    "parameters": {"binary_data_size": len(blob)},
                }
            )
            blobs.append(blob)
        head = orjson.dumps({"inputs": described})
        return head + b"".join(blobs), len(head)


def _outputs(answer: bytes) -> list[list[Any]]:
    """The candidate's outputs, in its order, as flat lists (JSON data)."""
    try:
        doc = orjson.loads(answer)
        outputs = doc["outputs"]
        return [list(out["data"]) for out in outputs]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not an infer answer: {exc}") from exc


def _flat(arr: np.ndarray) -> list[Any]:
    return [x.decode() if isinstance(x, bytes) else x for x in arr.ravel().tolist()]


def agrees(task: str, ours: list[np.ndarray], theirs: list[list[Any]], tolerance: float) -> bool:
    """Classification: the same label (first output) for every row. Regression: every output
    within ``tolerance``. Outputs are paired by position: exports name them differently."""
    if task == "classification":
        return bool(theirs) and _flat(ours[0]) == theirs[0]
    if len(theirs) < len(ours):
        return False
    for mine, other in zip(ours, theirs, strict=False):
        if mine.size != len(other):
            return False
        if mine.dtype.kind not in "biuf":
            if _flat(mine) != other:
                return False
            continue
        try:
            b = np.asarray(other, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        diff = np.abs(mine.astype(np.float64).ravel() - b)
        if not bool(np.all(diff <= tolerance)):  # NaN compares False: a disagreement
            return False
    return True
