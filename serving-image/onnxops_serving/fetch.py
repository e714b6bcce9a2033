"""Model fetch at start: a local path or mount, ``file://``, ``http(s)://`` or ``s3://``
(`s3`); sha256 verified."""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import s3
from .errors import TRANSIENT, LoadFailure, ModelUnavailable

log = logging.getLogger(__name__)

# Statuses worth another try: the server or a proxy in front of it is briefly unwell.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchedModel:
    """A model file on local disk, its bundle metadata (if any) and its verified digest."""

    onnx_path: Path
    metadata: dict[str, Any] | None
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_metadata(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        meta = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ModelUnavailable(
            f"{path} is not valid JSON: {exc}", LoadFailure.INPUT_SCHEMA_MISMATCH
        ) from exc
    if not isinstance(meta, dict):
        raise ModelUnavailable(f"{path} must hold a JSON object", LoadFailure.INPUT_SCHEMA_MISMATCH)
    return meta


def _local(uri: str) -> tuple[Path, Path]:
    """The ONNX file and the model.json path beside it, for a local file or bundle dir."""
    path = Path(urllib.parse.urlparse(uri).path if uri.startswith("file://") else uri)
    if path.is_dir():
        onnx = path / "model.onnx"
        if not onnx.is_file():
            found = sorted(path.glob("*.onnx"))
            if len(found) != 1:
                raise ModelUnavailable(
                    f"bundle directory {path} has no model.onnx", LoadFailure.NOT_FOUND
                )
            onnx = found[0]
        return onnx, path / "model.json"
    if not path.is_file():
        raise ModelUnavailable(f"model file {path} does not exist", LoadFailure.NOT_FOUND)
    return path, path.parent / "model.json"


def _http_cause(code: int) -> str:
    if code in (401, 403):
        return LoadFailure.ACCESS_DENIED
    if code in (404, 410):
        return LoadFailure.NOT_FOUND
    return LoadFailure.FETCH_FAILED


def _untrusted(exc: BaseException) -> str | None:
    """OpenSSL's words when the failure is a certificate that does not verify, else None."""
    cause = getattr(exc, "reason", exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return str(cause.verify_message or cause.reason or cause)
    return None


def _download(url: str, dest: Path, *, retries: int, timeout: float, missing_ok: bool) -> bool:
    """Stream ``url`` into ``dest``; retry transient failures. False if 404 and ``missing_ok``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
            part.replace(dest)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return False
            if exc.code not in _TRANSIENT_STATUS:
                raise ModelUnavailable(
                    f"cannot download {url}: HTTP {exc.code} {exc.reason}", _http_cause(exc.code)
                ) from None
            if attempt == retries:
                raise ModelUnavailable(
                    f"cannot download {url} after {retries + 1} attempts ({TRANSIENT}): "
                    f"HTTP {exc.code} {exc.reason}",
                    LoadFailure.FETCH_FAILED,
                ) from None
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            untrusted = _untrusted(exc)
            if untrusted is not None:  # no retry makes a certificate trusted
                raise ModelUnavailable(
                    f"cannot download {url}: the server's TLS certificate is not trusted "
                    f"({untrusted}); not retried",
                    LoadFailure.FETCH_FAILED,
                ) from None
            if attempt == retries:
                raise ModelUnavailable(
                    f"cannot download {url} after {retries + 1} attempts ({TRANSIENT}): {exc}",
                    LoadFailure.FETCH_FAILED,
                ) from exc
            reason = str(exc)
        delay = min(0.2 * 2**attempt, 5.0)
        log.warning(
            "download of %s failed (%s); retry %d in %.1fs", url, reason, attempt + 1, delay
        )
        time.sleep(delay)
    raise AssertionError("unreachable")


def _remote(uri: str, cache_dir: Path, *, retries: int, timeout: float) -> tuple[Path, Path]:
    parsed = urllib.parse.urlparse(uri)
    if parsed.path.endswith(".onnx"):
        onnx_url = uri
        meta_url = urllib.parse.urljoin(uri, "model.json")
        name = Path(parsed.path).name
    else:
        base = uri if uri.endswith("/") else uri + "/"
        onnx_url, meta_url, name = base + "model.onnx", base + "model.json", "model.onnx"
    # One folder per URL, so two models in one cache never overwrite each other.
    folder = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    onnx, meta = folder / name, folder / "model.json"
    try:
        _download(onnx_url, onnx, retries=retries, timeout=timeout, missing_ok=False)
        if not _download(meta_url, meta, retries=retries, timeout=timeout, missing_ok=True):
            meta.unlink(missing_ok=True)
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot write the model under {cache_dir}: {exc}", LoadFailure.STORAGE_FAILED
        ) from exc
    return onnx, meta


def fetch_model(
    uri: str, *, expected_sha256: str, cache_dir: str, retries: int = 4, timeout: float = 30.0
) -> FetchedModel:
    """Make the model available locally and verify it; raise ModelUnavailable with why not."""
    if not uri:
        raise ModelUnavailable(
            "no model given: set ONNXOPS_MODEL_URI or --model-uri", LoadFailure.INVALID_URI
        )
    scheme = urllib.parse.urlparse(uri).scheme
    hashed: str | None = None  # the digest, where the download computed it on the way
    if scheme in ("http", "https"):
        onnx, meta_path = _remote(uri, Path(cache_dir), retries=retries, timeout=timeout)
    elif scheme == "s3":
        folder = Path(cache_dir) / hashlib.sha256(uri.encode()).hexdigest()[:16]
        onnx, meta_path, hashed = s3.fetch(uri, folder, retries=retries, timeout=timeout)
    elif scheme in ("", "file"):
        onnx, meta_path = _local(uri)
    else:
        raise ModelUnavailable(
            f"unsupported model URI scheme {scheme!r} in {uri!r}: "
            "mount PVCs and ConfigMaps and pass the mounted path",
            LoadFailure.INVALID_URI,
        )
    try:
        metadata = _read_metadata(meta_path)
        actual = hashed or sha256_of(onnx)
    except PermissionError as exc:
        raise ModelUnavailable(f"cannot read the model: {exc}", LoadFailure.ACCESS_DENIED) from exc
    except OSError as exc:
        raise ModelUnavailable(f"cannot read the model: {exc}", LoadFailure.NOT_FOUND) from exc
    listed = ((metadata or {}).get("files") or {}).get(onnx.name) or {}
    for source, expected in (
        ("ONNXOPS_MODEL_SHA256", expected_sha256),
        ("model.json", listed.get("sha256")),
    ):
        if expected and expected.lower() != actual:
            raise ModelUnavailable(
                f"sha256 mismatch for {onnx.name}: {source} says {expected.lower()}, "
                f"the file has {actual}; refusing to load",
                LoadFailure.DIGEST_MISMATCH,
            )
    log.info("model %s fetched (%d bytes, sha256 %s)", onnx, os.path.getsize(onnx), actual)
    return FetchedModel(onnx_path=onnx, metadata=metadata, sha256=actual)
