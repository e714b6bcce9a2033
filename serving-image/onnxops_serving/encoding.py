"""Content codings of request bodies (RFC 9110 §8.4): gzip and deflate, bounded by size.

tritonclient's ``request_compression_algorithm`` sends gzip or deflate bodies. The body limit
applies to the decoded size, so a small compressed body cannot expand without bound.
"""

from __future__ import annotations

import zlib

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# zlib's window bits: 15 plus 32 accepts both a zlib and a gzip header; -15 is raw deflate,
# which some clients send for "deflate" although the RFC means the zlib format.
_AUTO = zlib.MAX_WBITS | 32
_RAW = -zlib.MAX_WBITS


def decode_body(body: bytes, coding: bytes, limit: int) -> bytes:
    """Undo the ``Content-Encoding`` ``coding`` of ``body``; at most ``limit`` bytes out."""
    codings = [c.strip().lower() for c in coding.split(b",") if c.strip()]
    for name in reversed(codings):  # listed in the order they were applied
        if name == b"identity":
            continue
        if name not in (b"gzip", b"x-gzip", b"deflate"):
            raise UnsupportedMediaType(
                f"Content-Encoding {name.decode('latin-1')!r} is not supported "
                "(use gzip, deflate or identity)"
            )
        body = _inflate(body, name, limit)
    return body


def _inflate(body: bytes, name: bytes, limit: int) -> bytes:
    wbits = _AUTO if name != b"deflate" or body[:1] in (b"\x78", b"\x1f") else _RAW
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {name.decode()} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decoded body is over the {limit}-byte limit")
    if not inflater.eof:
        raise BadRequest(f"{name.decode()} body is truncated")
    if inflater.unused_data:
        raise BadRequest(f"{len(inflater.unused_data)} bytes follow the {name.decode()} data")
    return out
