"""``s3://BUCKET/KEY`` models with obstore (Rust's object_store): streamed to a temporary file
beside the model, sha256 computed on the way, renamed into place; retried with back-off on
5xx, timeouts and connection errors, never on 403/404.

Where to connect and as whom comes from the standard AWS variables, so the usual credential
chain works unchanged (env keys, a web identity token file for IRSA / pod identity, instance
metadata): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` (an S3-compatible store), ``AWS_ALLOW_HTTP`` (plain
http, for a local store) and ``AWS_CA_BUNDLE`` (PEM roots of a private CA). The operator sets them from ``spec.model.storage``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from .errors import TRANSIENT, LoadFailure, ModelUnavailable

log = logging.getLogger(__name__)

_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_DENIED = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "XAdminUserNotFound",  # versitygw's 404 for an unknown access key (S3: a 403)
    }
)

_UNWELL = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})
"""S3 error codes of a store that is briefly unwell (retried, as a connection error is)."""


def split(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://BUCKET/KEY``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ModelUnavailable(f"{uri}: expected s3://BUCKET/KEY", LoadFailure.INVALID_URI)
    return parts.netloc, parts.path.lstrip("/")


def store(bucket: str, *, retries: int, timeout: float) -> Any:
    """An S3 store for ``bucket`` configured from the environment (see the module doc)."""
    from obstore.store import S3Store  # imported only for s3:// models

    options: dict[str, Any] = {"timeout": timedelta(seconds=timeout)}
    if os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes"):
        options["allow_http"] = True
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle:  # a private CA, trusted beside the system roots
        try:
            options["root_certificate"] = Path(bundle).read_bytes()
        except OSError as exc:
            raise ModelUnavailable(
                f"cannot read the CA bundle {bundle}: {exc}", LoadFailure.FETCH_FAILED
            ) from exc
    config: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False  # path style, as local stores want
    # object_store draws each wait from [init_backoff, 2 x the previous one], so the waits
    # grow slowly and at random; the floor is what bounds them below: `retries` retries wait
    # at least retries x 0.5 s (at 0.2 s, 8 retries once gave up after 2.3 s in all).
    retry = {
        "max_retries": retries,
        "backoff": {
            "init_backoff": timedelta(seconds=0.5),
            "max_backoff": timedelta(seconds=5),
            "base": 2,
        },
        "retry_timeout": timedelta(seconds=max(timeout, 1) * (retries + 1)),
    }
    # obstore's TypedDicts describe these mappings; plain dicts are what it takes at run time.
    return S3Store(
        bucket, client_options=cast(Any, options), retry_config=cast(Any, retry), **config
    )


_CERT = re.compile(r"InvalidCertificate\(\s*(\w+)")


def _root_cause(text: str) -> str:
    """What obstore's debug dump says at its bottom, where its first line does not."""
    cert = _CERT.search(text)
    if cert:
        return (
            f" (invalid certificate: {cert.group(1)}; a store behind a private CA needs "
            "spec.model.storage.caConfigMap)"
        )
    return ""


def _failure(uri: str, exc: Exception) -> ModelUnavailable:
    """The cause of a failed request, with the S3 error code and the URI (no credential)."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(exc)
    found = _CODE.search(text)
    code = found.group(1) if found else type(exc).__name__
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)) or code in _DENIED:
        cause = LoadFailure.ACCESS_DENIED
    elif isinstance(exc, FileNotFoundError):
        cause = LoadFailure.NOT_FOUND
    else:
        cause = LoadFailure.FETCH_FAILED
        root = _root_cause(text)
        if not found:
            code = f"{code}: {text.splitlines()[0][:300]}{root}"
        if (not found and not root) or code in _UNWELL:
            # Said before obstore's text, which the operator may cut.
            return ModelUnavailable(f"cannot download {uri} ({TRANSIENT}): {code}", cause)
    return ModelUnavailable(f"cannot download {uri}: {code}", cause)


def download(
    store_: Any, bucket: str, key: str, dest: Path, *, missing_ok: bool = False
) -> str | None:
    """Stream one object to ``dest`` (atomically) and return its sha256 (hashed on the way,
    so the file is read once); None if it is missing and ``missing_ok``. The digest is
    checked later, against the spec and model.json."""
    import obstore

    uri = f"s3://{bucket}/{key}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        result = obstore.get(store_, key)
        # The digest is computed on a thread of its own while the next chunk arrives and is
        # written (hashlib releases the GIL): 0.8x of a plain copy instead of 0.68x when
        # hashed in line (bench/storage). 1 MiB chunks: larger ones measured slower here.
        with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher, part.open("wb") as out:
            hashing: Future[None] | None = None
            for chunk in result.stream(min_chunk_size=1 << 20):
                out.write(chunk)
                if hashing is not None:
                    hashing.result()  # in order: one chunk at a time
                hashing = hasher.submit(digest.update, chunk)
            if hashing is not None:
                hashing.result()
    except FileNotFoundError as exc:
        part.unlink(missing_ok=True)
        if missing_ok and "NoSuchBucket" not in str(exc):
            return None
        raise _failure(uri, exc) from None
    except OSError as exc:  # the local disk, not the store
        part.unlink(missing_ok=True)
        if type(exc).__module__.startswith("obstore"):
            raise _failure(uri, exc) from None
        raise ModelUnavailable(f"cannot write {dest}: {exc}", LoadFailure.STORAGE_FAILED) from exc
    except Exception as exc:  # obstore's own errors (connection, 5xx after the retries)
        part.unlink(missing_ok=True)
        raise _failure(uri, exc) from None
    part.replace(dest)
    log.info("downloaded %s (%d bytes, sha256 %s)", uri, dest.stat().st_size, digest.hexdigest())
    return digest.hexdigest()


def fetch(uri: str, folder: Path, *, retries: int, timeout: float) -> tuple[Path, Path, str]:
    """The model file, the model.json path (present or not) and the model file's sha256 of
    an ``s3://`` model: a key ending in ``.onnx``, or a bundle prefix holding ``model.onnx``
    and ``model.json``."""
    bucket, key = split(uri)
    s = store(bucket, retries=retries, timeout=timeout)
    if key.endswith(".onnx"):
        onnx_key = key
        meta_key = f"{key.rsplit('/', 1)[0]}/model.json" if "/" in key else "model.json"
        name = Path(key).name
    else:
        prefix = f"{key.rstrip('/')}/" if key else ""
        onnx_key, meta_key, name = f"{prefix}model.onnx", f"{prefix}model.json", "model.onnx"
    onnx, meta = folder / name, folder / "model.json"
    sha = download(s, bucket, onnx_key, onnx)
    assert sha is not None  # not missing_ok: a missing model raised
    if download(s, bucket, meta_key, meta, missing_ok=True) is None:
        meta.unlink(missing_ok=True)
    return onnx, meta, sha
