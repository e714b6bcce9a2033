"""The runtime's error hierarchy; each class maps once to an HTTP status in the REST layer."""

from __future__ import annotations


class ServingError(Exception):
    """Base of every error the data plane reports to a client."""

    status = 500


class BadRequest(ServingError):
    """The request is malformed or does not fit the model (400)."""

    status = 400


class NotFound(ServingError):
    """Unknown model, version, route, or request id (404)."""

    status = 404


class PayloadTooLarge(ServingError):
    """The body is over the configured limit (413)."""

    status = 413


class UnsupportedMediaType(ServingError):
    """The body comes in a content coding the server cannot decode (415)."""

    status = 415


class NotReady(ServingError):
    """The model is not loaded and warmed up yet, or the server is draining (503)."""

    status = 503


class InferenceFailed(ServingError):
    """ONNX Runtime rejected or failed the computation (500)."""

    status = 500


class LoadFailure:
    """Why a model cannot be served: the first word of the termination message, which the
    operator turns into the reason of the ModelDeployment's ModelAvailable condition."""

    FETCH_FAILED = "ModelFetchFailed"
    """The source did not answer (DNS, connection, timeout, 5xx) after the retries (its
    message then says `TRANSIENT`), or its TLS certificate is not trusted."""
    NOT_FOUND = "ModelNotFound"
    """The source answered that the model is not there (HTTP 404, no such file)."""
    ACCESS_DENIED = "ModelAccessDenied"
    """The source refused us (HTTP 401/403, a file we may not read)."""
    DIGEST_MISMATCH = "ModelDigestMismatch"
    """The bytes are not the ones the spec or model.json names (sha256)."""
    INVALID_MODEL = "InvalidModel"
    """The file is not an ONNX model ONNX Runtime can load and serve."""
    INPUT_SCHEMA_MISMATCH = "InputSchemaMismatch"
    """model.json describes an input the model does not have."""
    INVALID_URI = "InvalidModelURI"
    """No URI, or one of a scheme the runtime cannot read."""
    STORAGE_FAILED = "ModelStorageFailed"
    """The model cannot be written to the local cache (disk full, read-only)."""
    SERVER_FAILED = "ServerFailed"
    """The model loaded, but a listener could not start."""


TRANSIENT = "a transient error, retried with back-off; the pod tries again when it restarts"
"""Said in a ModelFetchFailed message whose cause may pass by itself (a store down, a
timeout, a 5xx): the user reads that waiting may be all it takes, unlike a 404 or a 403."""


class ModelUnavailable(Exception):
    """The model cannot be fetched, verified or loaded; the process exits non-zero."""

    def __init__(self, message: str, reason: str = LoadFailure.INVALID_MODEL) -> None:
        super().__init__(message)
        self.reason = reason
