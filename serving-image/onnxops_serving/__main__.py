"""Process entry point: fetch and load the model, serve it, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import uvicorn

from . import termination
from .dataplane import DataPlane
from .errors import LoadFailure, ModelUnavailable
from .fetch import fetch_model
from .grpc_service import GrpcTransport
from .metrics import ServingMetrics
from .mirror import Mirror
from .model import LoadedModel, load_model
from .protocol import protocol_class
from .rest import RestApp
from .settings import ServingSettings, parse_settings

log = logging.getLogger("onnxops_serving")


class _Server(uvicorn.Server):
    """uvicorn's server, but readiness turns false the moment a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, app: RestApp, shutdown_delay_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._delay = shutdown_delay_s
        self._delayed = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.draining = True
        if sig == signal.SIGTERM and self._delay > 0 and not self._delayed:
            # Kubernetes goes on routing new connections to a terminating pod until every
            # node has seen its endpoint removed; keep accepting (not ready) until then.
            # A second SIGTERM stops at once.
            self._delayed = True
            timer = threading.Timer(self._delay, self._stop, (sig, frame))
            timer.daemon = True
            timer.start()
            return
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGTERM:
            return  # stopping already (the delay's timer after a second SIGTERM)
        # Sets should_exit, which uvicorn's main loop polls: safe from the timer thread.
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutdown; a drained stop on SIGTERM is a
        # success, so exit 0 instead of dying by the signal.
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)


def _model_dir(settings: ServingSettings) -> str:
    uri = settings.model_uri
    if uri.startswith(("http://", "https://", "s3://")):
        return settings.model_cache_dir
    path = Path(uri.removeprefix("file://"))
    return str(path if path.is_dir() else path.parent)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    metrics = ServingMetrics(_model_dir(settings))
    failure: list[tuple[str, str]] = []  # (LoadFailure reason, message)
    server: _Server | None = None

    async def start() -> None:
        started = time.perf_counter()
        if transport is not None:
            try:
                await transport.start()
            except RuntimeError as exc:
                failure.append(
                    (
                        LoadFailure.SERVER_FAILED,
                        f"cannot listen for gRPC on port {settings.grpc_port}: {exc}",
                    )
                )
                assert server is not None
                server.should_exit = True
                return
        try:
            model = await asyncio.to_thread(_load, settings)
        except ModelUnavailable as exc:
            failure.append((exc.reason, str(exc)))
            assert server is not None
            server.should_exit = True
            return
        model.load_seconds = time.perf_counter() - started
        metrics.model = {"model": model.name, "version": model.version}
        metrics.info = {"sha256": model.sha256, "task": model.task}
        metrics.load_seconds = model.load_seconds
        plane = DataPlane(model, settings, metrics)
        if settings.mirror_config:
            plane.mirror = Mirror(
                settings,
                metrics,
                model_name=model.name,
                task=plane.quality.task,
                input_types={spec.name: spec.datatype for spec in model.inputs},
            )
            plane.mirror.start()
        app.plane = plane
        metrics.ready = True
        log.info(
            "serving %s version %s (%.0f ms to load, %.3f ms per single-row inference)",
            model.name, model.version, model.load_seconds * 1000, model.inference_ms,
        )  # fmt: skip

    async def stop() -> None:
        # After the REST drain: gRPC calls are served until then, and get the same grace.
        if transport is not None:
            await transport.stop(settings.drain_seconds)
        if app.plane is not None and app.plane.mirror is not None:
            await app.plane.mirror.stop()

    app = RestApp(metrics, settings.max_body_bytes, start, stop)
    transport = (
        GrpcTransport(
            app,
            host=settings.host,
            port=settings.grpc_port,
            max_message_bytes=settings.max_body_bytes,
        )
        if settings.grpc_port
        else None
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with bounds on slow and oversized requests uvicorn lacks.
        http=protocol_class(
            request_timeout_s=settings.request_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            max_head_bytes=settings.max_header_bytes,
            max_connections=_connection_limit(settings.max_connections),
            count=metrics.count,
        ),
        ws="none",  # no WebSocket: an Upgrade request is served as plain HTTP/1.1
        timeout_keep_alive=settings.keepalive_timeout_s,  # type: ignore[arg-type]
        lifespan="on",
        access_log=False,
        server_header=False,
        # No proxy in front needs X-Forwarded-* rewriting; it costs a wrapper per request.
        proxy_headers=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.drain_seconds + 0.999),
        backlog=2048,
    )
    server = _Server(config, app, settings.shutdown_delay_s)
    server.run()
    if failure:
        reason, text = failure[0]
        termination.write(settings.termination_message_path, reason, text)
        print(f"onnxops-serve: error: {reason}: {text}", file=sys.stderr)
        return 1
    return 0


def _connection_limit(wanted: int) -> int:
    """Raise the soft file limit to the hard one, and keep ``wanted`` connections within it
    (with room for the model, logs and the listening sockets): past the limit ``accept``
    fails and new clients are reset instead of answered."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + 64)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    usable = max(1, soft - 64)
    if wanted > usable:
        log.warning("max_connections %d is over the file limit; using %d", wanted, usable)
    return min(wanted, usable)


def _load(settings: ServingSettings) -> LoadedModel:
    fetched = fetch_model(
        settings.model_uri,
        expected_sha256=settings.model_sha256,
        cache_dir=settings.model_cache_dir,
        retries=settings.fetch_retries,
        timeout=settings.fetch_timeout_s,
    )
    return load_model(
        fetched,
        name=settings.model_name,
        version=settings.model_version,
        threads=settings.threads,
        warm_rows=settings.max_batch_size,
    )


if __name__ == "__main__":
    sys.exit(main())
