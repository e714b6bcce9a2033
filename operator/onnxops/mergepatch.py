"""JSON merge patches (RFC 7386) that carry only what changed, so a status write sends the
fields that moved and leaves the rest, and a write that would change nothing is not sent.
Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the merge patch `desired` that changes `current`: applied to `current`,
    both give the same object. Objects are compared key by key (a merge patch leaves absent
    keys alone); lists and scalars are replaced whole, as a merge patch replaces them; None
    (remove) is kept only where there is something to remove."""
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if want is None:
            if have is not None:  # an object read back never holds null: nothing to remove
                out[key] = None
        elif isinstance(want, Mapping) and isinstance(have, Mapping):
            inner = changes(have, want)
            if inner:
                out[key] = inner
        elif want != have:
            out[key] = want
    return out
