"""The gRPC transport: OIP v2 ``inference.GRPCInferenceService`` and ``grpc.health.v1.Health``.

Runs on its own port in the same event loop as REST and shares everything behind it: the
data plane (one model session, one batcher, the feedback cache and drift window) and the
metrics, where its requests carry ``protocol="grpc"`` and the HTTP status their outcome maps
to. Like ``rest``, it only translates: errors map to gRPC status codes here, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from . import grpc_codec
from .dataplane import DataPlane
from .errors import NotFound, NotReady, ServingError
from .proto import health_pb2
from .proto import inference_pb2 as pb
from .rest import RestApp

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
_HEALTH = "grpc.health.v1.Health"
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
_Serving = health_pb2.HealthCheckResponse.ServingStatus


class GrpcTransport:
    """The gRPC server of one serving process; ``app`` holds the shared state (the data
    plane once loaded, whether the process drains, the metrics)."""

    def __init__(self, app: RestApp, *, host: str, port: int, max_message_bytes: int) -> None:
        self._app = app
        self._address = f"{host}:{port}"
        self._max_message = max_message_bytes
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Listen; raises RuntimeError when the port cannot be bound."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message),
                # gRPC's default SO_REUSEPORT lets a second process bind a taken port
                # silently; a port clash must fail the start instead.
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(SERVICE, self._inference_handlers()),
                grpc.method_handlers_generic_handler(
                    _HEALTH,
                    {"Check": self._unary("health", self._check, health_pb2.HealthCheckRequest)},
                ),
            )
        )
        server.add_insecure_port(self._address)
        await server.start()
        self._server = server

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight finish for at most ``grace`` seconds."""
        if self._server is not None:
            await self._server.stop(grace)

    def _inference_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "ServerLive": self._unary("health", self._live, pb.ServerLiveRequest),
            "ServerReady": self._unary("health", self._ready, pb.ServerReadyRequest),
            "ModelReady": self._unary("health", self._model_ready, pb.ModelReadyRequest),
            "ServerMetadata": self._unary("metadata", self._server_meta, pb.ServerMetadataRequest),
            "ModelMetadata": self._unary("metadata", self._model_meta, pb.ModelMetadataRequest),
            "ModelInfer": self._unary("infer", self._infer, pb.ModelInferRequest),
        }

    def _unary(
        self, endpoint: str, call: Callable[[Any], Awaitable[Any]], request_type: Any
    ) -> grpc.RpcMethodHandler:
        metrics = self._app.metrics
        latency = metrics.grpc_request_latency if endpoint == "infer" else None

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metrics.in_flight += 1
            start = time.perf_counter()
            status = 200
            try:
                return await call(request)
            except ServingError as exc:
                status = exc.status
                await context.abort(_CODES.get(status, grpc.StatusCode.UNKNOWN), str(exc))
            except Exception as exc:  # never let one call take the server down
                log.exception("unexpected error in gRPC %s", endpoint)
                status = 500
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")
            finally:
                metrics.in_flight -= 1
                metrics.count(endpoint, status, "grpc")
                if latency is not None:
                    latency.observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )

    # ---- the calls --------------------------------------------------------------------------

    def _plane(self) -> DataPlane:
        if self._app.plane is None:
            raise NotReady("the model is not loaded yet")
        return self._app.plane

    def _is_ready(self) -> bool:
        return self._app.plane is not None and not self._app.draining

    async def _live(self, _: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self, _: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._is_ready())

    async def _model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        plane = self._app.plane
        if plane is None or self._app.draining:
            return pb.ModelReadyResponse(ready=False)
        try:
            plane.check(request.name, request.version or None)
        except NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def _server_meta(self, _: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**DataPlane.server_metadata())

    async def _model_meta(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        plane = self._plane()
        plane.check(request.name, request.version or None)
        return grpc_codec.model_metadata(plane.model_metadata())

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        plane = self._plane()
        plane.check(request.model_name, request.model_version or None)
        rid, outputs = await plane.infer_decoded(grpc_codec.decode_request(request))
        return grpc_codec.encode_response(
            model_name=plane.model.name,
            model_version=plane.model.version,
            request_id=rid,
            outputs=outputs,
        )

    async def _check(
        self, request: health_pb2.HealthCheckRequest
    ) -> health_pb2.HealthCheckResponse:
        """The server ("" or the inference service) or the model by name: SERVING once the
        model is loaded and warm, NOT_SERVING while loading or draining."""
        plane = self._app.plane
        known = {"", SERVICE} | ({plane.model.name} if plane is not None else set())
        if request.service not in known:
            raise NotFound(f"unknown service {request.service!r}")
        status = _Serving.SERVING if self._is_ready() else _Serving.NOT_SERVING
        return health_pb2.HealthCheckResponse(status=status)
