"""`onnxops push BUNDLE s3://BUCKET/PREFIX/`: upload a model bundle to object storage and
print the `spec.model` block that deploys it.

Files go up first (multipart for those over the part size, `--part-size` or
`ONNXOPS_PUSH_PART_SIZE`, default 8 MiB; each with its sha256 in the object's metadata),
`model.json` last, so a reader that finds the manifest finds every file it lists. Where and
as whom comes from flags or the standard AWS variables (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
`AWS_ALLOW_HTTP`), as the serving runtime reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import yaml

from onnxops.errors import OnnxopsError, UserInputError
from onnxops.pipeline import bundle, options

MULTIPART_CHUNK = 8 << 20
"""The default part size: a file larger than one part goes up in parts (S3 wants parts of at
least 5 MiB, the last one excepted)."""


@dataclass(frozen=True)
class Destination:
    bucket: str
    prefix: str  # "" or ending with "/"
    endpoint: str | None
    region: str | None
    insecure: bool
    part_size: int = MULTIPART_CHUNK

    def uri(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"


def destination(
    uri: str,
    *,
    endpoint: str | None,
    region: str | None,
    insecure: bool,
    part_size: int | None = None,
) -> Destination:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise UserInputError(f"{uri}: expected s3://BUCKET/PREFIX/")
    prefix = parts.path.lstrip("/")
    if prefix.endswith(".onnx"):
        raise UserInputError(f"{uri}: push takes a prefix (a bundle is several files)")
    prefix = f"{prefix.rstrip('/')}/" if prefix else ""
    return Destination(
        parts.netloc,
        prefix,
        endpoint or os.environ.get("AWS_ENDPOINT_URL") or None,
        region or os.environ.get("AWS_REGION") or None,
        insecure or os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes"),
        _part_size(part_size),
    )


def _part_size(given: int | None) -> int:
    """The flag's, else ``ONNXOPS_PUSH_PART_SIZE``'s, else the default; a positive integer."""
    raw: object = given if given is not None else os.environ.get("ONNXOPS_PUSH_PART_SIZE")
    if raw is None or raw == "":
        return MULTIPART_CHUNK
    try:
        size = int(str(raw))
    except ValueError:
        size = 0
    if size <= 0:
        raise UserInputError(f"part size must be a positive number of bytes, got {raw!r}")
    return size


def _store(dest: Destination) -> Any:
    from obstore.store import S3Store

    config: dict[str, Any] = {}
    if dest.endpoint:
        config.update(endpoint=dest.endpoint, virtual_hosted_style_request=False)
    if dest.region:
        config["region"] = dest.region
    client = {"allow_http": True} if dest.insecure else {}
    retry = {
        "max_retries": 4,
        "backoff": {"init_backoff": timedelta(seconds=0.2), "max_backoff": timedelta(seconds=5)},
        "retry_timeout": timedelta(seconds=120),
    }
    return S3Store(
        dest.bucket, client_options=cast(Any, client), retry_config=cast(Any, retry), **config
    )


def push(bundle_dir: Path, dest: Destination) -> dict[str, Any]:
    """Upload the bundle; the `spec.model` block (a dict) that deploys it."""
    import obstore

    manifest = bundle.read_bundle(bundle_dir)
    problems = bundle.verify_files(bundle_dir, manifest)
    if problems:
        raise UserInputError("bundle files do not match model.json: " + "; ".join(problems))
    store = _store(dest)
    names = [*manifest.files, bundle.MANIFEST]
    try:
        for name in names:
            path = bundle_dir / name
            sha = manifest.files[name].sha256 if name in manifest.files else None
            attributes = {"sha256": sha} if sha else None
            with path.open("rb") as fh:
                obstore.put(
                    store,
                    f"{dest.prefix}{name}",
                    fh,
                    attributes=cast(Any, attributes),
                    chunk_size=dest.part_size,
                    use_multipart=path.stat().st_size > dest.part_size,
                )
    except Exception as exc:  # obstore's errors name the request and the S3 code
        first = str(exc).splitlines()[0][:400]
        raise OnnxopsError(f"upload to {dest.uri()} failed: {first}") from None
    return spec_model(manifest, dest)


def spec_model(manifest: bundle.ModelBundle, dest: Destination) -> dict[str, Any]:
    main = next(n for n, f in manifest.files.items() if f.variant == "default")
    model: dict[str, Any] = {
        "uri": dest.uri() if main == "model.onnx" else dest.uri(main),
        "sha256": manifest.files[main].sha256,
        # spec.model.name is a DNS label (it appears in URLs); bundle names may hold "_" or ".".
        "name": re.sub(r"[^a-z0-9-]+", "-", manifest.name.lower()).strip("-")[:63] or "model",
        "version": str(manifest.version),
    }
    variants = {
        f.variant: {"uri": dest.uri(n), "sha256": f.sha256}
        for n, f in manifest.files.items()
        if f.variant != "default"
    }
    if variants:
        model["variants"] = variants
    storage: dict[str, Any] = {"secretName": "REPLACE-WITH-YOUR-SECRET"}
    if dest.endpoint:
        storage["endpoint"] = dest.endpoint
    if dest.region:
        storage["region"] = dest.region
    if dest.insecure:
        storage["insecure"] = True
    model["storage"] = storage
    return model


def storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", help="an S3-compatible store [AWS_ENDPOINT_URL]")
    p.add_argument("--region", metavar="NAME", help="the bucket's region [AWS_REGION]")
    p.add_argument(
        "--insecure", action="store_true", help="allow a plain http endpoint [AWS_ALLOW_HTTP]"
    )
    p.add_argument(
        "--part-size",
        type=int,
        metavar="BYTES",
        help="upload files larger than this in parts of this size (default 8 MiB; S3 wants "
        "at least 5 MiB) [ONNXOPS_PUSH_PART_SIZE]",
    )


def print_block(model: dict[str, Any], *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"model": model}))
        return
    print("# paste under spec: (secretName: a Secret with AWS_ACCESS_KEY_ID and")
    print("# AWS_SECRET_ACCESS_KEY; drop it to use the pod's AWS identity, e.g. IRSA)")
    sys.stdout.write(yaml.safe_dump({"model": model}, sort_keys=False))


def cmd_push(args: argparse.Namespace) -> int:
    bundle_dir = args.bundle if args.bundle.is_dir() else args.bundle.parent
    dest = destination(
        args.uri,
        endpoint=args.endpoint,
        region=args.region,
        insecure=args.insecure,
        part_size=args.part_size,
    )
    print_block(push(bundle_dir, dest))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = options.parser(sub, "push", "upload a bundle to s3://BUCKET/PREFIX/; print spec.model")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle dir")
    p.add_argument("uri", metavar="s3://BUCKET/PREFIX/", help="where to put it")
    storage_args(p)
    p.set_defaults(func=options.guarded(cmd_push))
