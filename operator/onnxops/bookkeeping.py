"""kopf's bookkeeping on our objects (diff-base and handler progress annotations), made safe.

kopf's own storages copy `metadata.annotations` into the diff-base annotation, so a resource
carrying large annotations of its own soon exceeds the apiserver's 256 KiB limit, after
which every patch, the finalizer's removal included, fails and the object can never be
deleted; and they raise on an annotation that is not JSON, so such an object is never
reconciled again. These keep only the spec, and treat an unreadable record as absent.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any, cast

import kopf

from onnxops.reasons import Reason

logger = logging.getLogger(__name__)


def _decode(body: kopf.Body, key: str, encoded: str | None) -> dict[str, Any] | None:
    """The annotation's JSON object; None (and a Warning saying so) when it is unreadable."""
    if encoded is None:
        return None
    try:
        decoded = json.loads(encoded)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    message = f"annotation {key} is not a JSON object; treated as absent (handled anew)"
    logger.warning("[%s/%s] %s", body.meta.namespace, body.meta.name, message)
    # Said on the object too; an Event that cannot be posted must not stop the handling.
    with contextlib.suppress(Exception):
        kopf.warn(body, reason=Reason.BOOKKEEPING_RESET, message=message)
    return None


class SpecDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The last handled state is the spec alone: the only part the handlers act on."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        essence = dict(super().build(body=body, extra_fields=extra_fields))
        essence.pop("metadata", None)  # labels and annotations: not ours to act on
        return cast(kopf.BodyEssence, essence)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        for key in self.make_keys(self.key, body=body):
            decoded = _decode(body, key, body.metadata.annotations.get(key))
            if decoded is not None:
                # Records written before this storage carried metadata; comparing them as
                # they were would read as a change of every object after an upgrade.
                decoded.pop("metadata", None)
                return cast(kopf.BodyEssence, decoded)
        return None


class SafeProgressStorage(kopf.AnnotationsProgressStorage):
    """Handler progress records; an unreadable one restarts that handler's bookkeeping."""

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        for full_key in self.make_keys(key, body=body):
            decoded = _decode(body, full_key, body.metadata.annotations.get(full_key))
            if decoded is not None:
                return decoded
        return None
