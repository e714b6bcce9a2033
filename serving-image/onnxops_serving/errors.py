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


class ModelUnavailable(Exception):
    """The model cannot be fetched, verified or loaded; the process exits non-zero."""
