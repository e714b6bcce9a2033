"""Train → push → deploy from object storage, against a real S3 server (versitygw on
loopback): `onnxops build` then `onnxops push` upload a bundle with an int8 variant, the
printed `spec.model` block deploys it from `s3://` with credentials from a Secret; the cloud
pool serves the default file and the edge pool the int8 one, both answering correctly; wrong
credentials, a missing bucket, a missing key and a file whose sha256 is not the spec's each
name their cause and the URI in status, once, with no secret anywhere, and touch nothing
else; a store that is down when the pod starts is said to be a transient cause, and the model
serves once the store is up; `onnxops build --push` uploads in parts, each file with its
sha256 in the object's metadata."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from devcluster import processes, s3store
from devcluster.servingpod import loopback_of
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator

pytestmark = pytest.mark.cluster

POD_RUNNER_COMMAND = None  # the real serving runtime downloads from the bucket
ONNXOPS = [sys.executable, "-m", "onnxops.cli"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3store.S3Server]:
    with s3store.running(tmp_path_factory.mktemp("s3")) as server:
        server.bucket("models")
        yield server


@pytest.fixture(scope="module")
def pushed(s3: s3store.S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The `spec.model` block `onnxops push` printed for a freshly built iris bundle."""
    out = tmp_path_factory.mktemp("bundle") / "bc"
    env = {**s3.env()}
    # An MLP: its int8 variant is smaller than the default, so optimize keeps it.
    build = [*ONNXOPS, "build", "--dataset", "breast_cancer", "--algorithm", "mlp"]
    build += ["--optimize", "--only", "int8", "--out", str(out), "--quiet"]
    subprocess.run(build, check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run(
        [*ONNXOPS, "push", str(out), "s3://models/bc/1/", "--insecure"],
        env={**_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    block: dict[str, Any] = yaml.safe_load(done.stdout)["model"]
    block["bundle"] = str(out)  # for the test's own reference answers; not part of a spec
    return block


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _secret(name: str, access: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {
            "AWS_ACCESS_KEY_ID": base64.b64encode(access.encode()).decode(),
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(secret.encode()).decode(),
        },
    }


def test_push_prints_a_block_that_names_every_file_and_its_digest(
    pushed: dict[str, Any], s3: s3store.S3Server
) -> None:
    assert pushed["uri"] == "s3://models/bc/1/"
    assert pushed["name"] == "breast-cancer", "a DNS label, as spec.model.name must be"
    assert pushed["storage"] == {
        "secretName": "REPLACE-WITH-YOUR-SECRET",
        "endpoint": s3.endpoint,
        "region": s3store.REGION,
        "insecure": True,
    }
    int8 = pushed["variants"]["int8"]
    assert int8["uri"] == "s3://models/bc/1/model.int8.onnx"
    objects = s3.data / "models" / "bc" / "1"
    assert (objects / "model.json").is_file() and (objects / "model.onnx").is_file()
    manifest = json.loads((objects / "model.json").read_text())
    assert manifest["files"]["model.onnx"]["sha256"] == pushed["sha256"]
    assert manifest["files"]["model.int8.onnx"]["sha256"] == int8["sha256"]


def _serve(kube: Kube, name: str) -> str:
    pod = kube.items("pods", f"onnxops.io/model-deployment={name}")[0]
    return f"http://{loopback_of(pod['status']['podIP'])}:8080"


def _spec_model(pushed: dict[str, Any], secret: str) -> dict[str, Any]:
    model = {k: v for k, v in pushed.items() if k != "bundle"}
    return {**model, "storage": {**model["storage"], "secretName": secret}}


def _expected(bundle: Path, file: str, rows: list[list[float]]) -> list[int]:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle / file), providers=["CPUExecutionProvider"])
    label = session.run(None, {"input": np.array(rows, dtype=np.float32)})[0]
    return [int(v) for v in label]


def test_cloud_and_edge_serve_their_files_from_the_bucket(
    kube: Kube, operator: Operator, pushed: dict[str, Any]
) -> None:
    from sklearn.datasets import load_breast_cancer

    assert kube.apply(_secret("store", s3store.ACCESS_KEY, s3store.SECRET_KEY)).returncode == 0
    model = _spec_model(pushed, "store")
    for name, pool in (("bc-cloud", "cloud"), ("bc-edge", "edge")):
        body = model_deployment(name, model=model, target={"pool": pool})
        assert kube.apply(body).returncode == 0
    rows = load_breast_cancer().data[:8].tolist()
    bundle = Path(pushed["bundle"])
    for name, variant, file in (
        ("bc-cloud", "default", "model.onnx"),
        ("bc-edge", "int8", "model.int8.onnx"),
    ):
        st = processes.wait_for(
            lambda n=name: (s := kube.status(n)).get("phase") == "Ready" and s,
            timeout_s=120,
            what=f"{name} Ready from s3",
        )
        assert st["variant"] == variant
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [8, 30],
                    "datatype": "FP32",
                    "data": [v for r in rows for v in r],
                }
            ]
        }
        url = f"{_serve(kube, name)}/v2/models/{pushed['name']}/infer"
        reply = httpx.post(url, json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        label = next(o for o in reply.json()["outputs"] if o["datatype"] in ("INT64", "INT32"))
        assert label["data"] == _expected(bundle, file, rows), f"{name} answers as {file}"
    # The Secret's values reach the pod by reference only.
    for kind, name in (("deployment", "bc-edge"), ("mdep", "bc-edge")):
        assert s3store.SECRET_KEY not in json.dumps(kube.get(kind, name))


def test_wrong_credentials_name_their_cause_once(
    kube: Kube, operator: Operator, pushed: dict[str, Any]
) -> None:
    assert kube.apply(_secret("wrong", s3store.ACCESS_KEY, "not-the-secret")).returncode == 0
    model = _spec_model(pushed, "wrong")
    assert kube.apply(model_deployment("bc-denied", model=model)).returncode == 0

    def denied() -> dict[str, Any] | None:
        st = kube.status("bc-denied")
        cond = next((c for c in st.get("conditions", []) if c["type"] == "ModelAvailable"), {})
        return cond if cond.get("reason") == "ModelAccessDenied" else None

    cond = processes.wait_for(denied, timeout_s=90, what="ModelAccessDenied")
    assert "SignatureDoesNotMatch" in cond["message"] and "s3://models/bc/1/" in cond["message"]
    assert "not-the-secret" not in cond["message"]
    processes.wait_for(
        lambda: any(
            c.get("restartCount", 0) >= 2
            for p in kube.items("pods", "onnxops.io/model-deployment=bc-denied")
            for c in p["status"].get("containerStatuses") or []
        ),
        timeout_s=90,
        what="a few restarts",
    )
    warnings = [e for e in kube.events("bc-denied") if e["reason"] == "ModelAccessDenied"]
    assert len(warnings) == 1
    assert kube.status("bc-cloud").get("phase") == "Ready", "nothing else affected"


def test_a_store_behind_a_private_ca_serves_with_its_ca_config_map(
    kube: Kube,
    operator: Operator,
    pushed: dict[str, Any],
    s3: s3store.S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same bundle on an https store whose certificate a private CA signed: the CA travels
    in a ConfigMap (key ca.crt), mounted by the pod runner as the kubelet does."""
    with s3store.running(tmp_path_factory.mktemp("s3-tls"), tls=True) as tls:
        import shutil

        shutil.copytree(s3.data / "models", tls.bucket("models"), dirs_exist_ok=True)
        assert tls.ca_file is not None
        ca = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "store-ca"},
            "data": {"ca.crt": tls.ca_file.read_text()},
        }
        assert kube.apply(ca).returncode == 0
        model = _spec_model(pushed, "store")
        model["storage"] = {
            "secretName": "store",
            "endpoint": tls.endpoint,
            "caConfigMap": "store-ca",
        }
        assert kube.apply(model_deployment("bc-tls", model=model)).returncode == 0
        processes.wait_for(
            lambda: kube.status("bc-tls").get("phase") == "Ready",
            timeout_s=120,
            what="bc-tls Ready over https with the private CA",
        )


def _condition(status: dict[str, Any], kind: str = "ModelAvailable") -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def _restarts(kube: Kube, name: str) -> int:
    statuses = [
        c
        for p in kube.items("pods", f"onnxops.io/model-deployment={name}")
        for c in p["status"].get("containerStatuses") or []
    ]
    return max((int(c.get("restartCount", 0)) for c in statuses), default=0)


def test_a_missing_bucket_key_or_digest_names_its_cause_once(
    kube: Kube, operator: Operator, pushed: dict[str, Any]
) -> None:
    """Each cause the user must fix, against the real store: the reason, the S3 error code (or
    the digests) and the URI in ModelAvailable, phase Failed, one Warning however often the
    pod restarts, no credential in status or Events, a good model beside them Ready."""
    assert kube.apply(_secret("store", s3store.ACCESS_KEY, s3store.SECRET_KEY)).returncode == 0
    model = _spec_model(pushed, "store")
    cases = {
        "bc-no-bucket": ({"uri": "s3://no-such-bucket/bc/1/"}, "ModelNotFound", "NoSuchBucket"),
        "bc-no-key": ({"uri": "s3://models/bc/9/"}, "ModelNotFound", "NoSuchKey"),
        "bc-tampered": ({"sha256": "0" * 64}, "ModelDigestMismatch", "sha256 mismatch"),
    }
    for name, (change, _, _) in cases.items():
        body = model_deployment(name, model={**model, **change})
        assert kube.apply(body).returncode == 0
    assert kube.apply(model_deployment("bc-good", model=model)).returncode == 0

    for name, (change, reason, words) in cases.items():
        st = processes.wait_for(
            lambda n=name, r=reason: (
                (s := kube.status(n)).get("phase") == "Failed"
                and _condition(s).get("reason") == r
                and s
            ),
            timeout_s=120,
            what=f"{name}: Failed with {reason}",
        )
        available = _condition(st)
        assert available["status"] == "False"
        uri = change.get("uri", model["uri"])
        assert f"cannot load {uri}: " in available["message"], available
        assert f"{uri}model.onnx" in available["message"] or reason == "ModelDigestMismatch"
        assert words in available["message"], available
        assert _condition(st, "Ready")["reason"] == "ModelLoadFailed"
    digest = _condition(kube.status("bc-tampered"))["message"]
    assert f"says {'0' * 64}, the file has {pushed['sha256']}" in digest, digest

    processes.wait_for(
        lambda: all(_restarts(kube, n) >= 2 for n in cases),
        timeout_s=120,
        what="each failing pod restarted twice",
    )
    for name, (_, reason, _) in cases.items():
        warnings = [e for e in kube.events(name) if e["reason"] == reason]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning", (name, warnings)
        said = json.dumps([kube.get("mdep", name).get("status"), kube.events(name)])
        assert s3store.SECRET_KEY not in said and s3store.ACCESS_KEY not in said, name
    processes.wait_for(
        lambda: kube.status("bc-good").get("phase") == "Ready",
        timeout_s=120,
        what="the good model beside them Ready",
    )
    assert _condition(kube.status("bc-good"))["reason"] == "ModelLoaded"


def test_a_store_down_at_pod_start_is_transient_then_serves(
    kube: Kube,
    operator: Operator,
    pushed: dict[str, Any],
    s3: s3store.S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The pod starts while its store is stopped: the runtime retries with back-off, gives up,
    and status says the cause is transient (not one to fix); once the store is up, the next
    restart loads the model, which answers as the bundle does."""
    from sklearn.datasets import load_breast_cancer

    late = s3store.S3Server(tmp_path_factory.mktemp("s3-late"))  # not started yet
    try:
        shutil.copytree(s3.data / "models", late.bucket("models"), dirs_exist_ok=True)
        assert kube.apply(_secret("store", s3store.ACCESS_KEY, s3store.SECRET_KEY)).returncode == 0
        model = _spec_model(pushed, "store")
        model["storage"] = {**model["storage"], "endpoint": late.endpoint}
        assert kube.apply(model_deployment("bc-late", model=model)).returncode == 0

        st = processes.wait_for(
            lambda: (
                _condition(s := kube.status("bc-late")).get("reason") == "ModelFetchFailed" and s
            ),
            timeout_s=120,
            what="bc-late: ModelFetchFailed while its store is stopped",
        )
        message = _condition(st)["message"]
        assert "transient" in message and "s3://models/bc/1/model.onnx" in message, message
        assert st["phase"] == "Failed", st  # no replica serves; the message says it may pass
        late.start()
        processes.wait_for(
            lambda: kube.status("bc-late").get("phase") == "Ready",
            timeout_s=120,
            what="bc-late Ready once its store is up",
        )
        rows = load_breast_cancer().data[:4].tolist()
        flat = [v for r in rows for v in r]
        body = {"inputs": [{"name": "input", "shape": [4, 30], "datatype": "FP32", "data": flat}]}
        url = f"{_serve(kube, 'bc-late')}/v2/models/{pushed['name']}/infer"
        reply = httpx.post(url, json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        label = next(o for o in reply.json()["outputs"] if o["datatype"] in ("INT64", "INT32"))
        assert label["data"] == _expected(Path(pushed["bundle"]), "model.onnx", rows)
        reasons = [e["reason"] for e in kube.events("bc-late")]
        assert reasons.count("ModelFetchFailed") == 1 and reasons.count("ModelLoaded") == 1
    finally:
        late.stop()


PART = 5 << 20
"""S3's smallest part size (the last part excepted), which versitygw enforces as S3 does."""


def test_build_push_uploads_in_parts_with_each_files_sha256(
    s3: s3store.S3Server, tmp_path: Path
) -> None:
    """`onnxops build --push` trains, exports and uploads in one command; with the part size
    lowered to S3's smallest (``ONNXOPS_PUSH_PART_SIZE``), a 7 MB model, one request at the
    default part size, goes up as a multipart upload (the ETag says how many parts), with
    its sha256 in the object's metadata and its bytes intact."""
    import obstore
    from obstore.store import S3Store
    from onnxops.pipeline.push import MULTIPART_CHUNK

    out = tmp_path / "digits"
    # 220 trees on digits: a model.onnx between S3's smallest part and the default part size.
    build = [*ONNXOPS, "build", "--dataset", "digits", "--algorithm", "random_forest"]
    build += ["--param", "n_estimators=220", "--out", str(out), "--quiet", "--json"]
    build += ["--push", "s3://models/digits/1/"]
    done = subprocess.run(
        build,
        env={**_env(), **s3.env(), "ONNXOPS_PUSH_PART_SIZE": str(PART)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    block = json.loads(done.stdout.strip().splitlines()[-1])["model"]
    sha = json.loads((out / "model.json").read_text())["files"]["model.onnx"]["sha256"]
    size = (out / "model.onnx").stat().st_size
    assert PART < size <= MULTIPART_CHUNK, f"model.onnx is {size} bytes"
    assert (block["uri"], block["sha256"]) == ("s3://models/digits/1/", sha)
    assert block["storage"]["endpoint"] == s3.endpoint

    store = S3Store(
        "models",
        endpoint=s3.endpoint,
        access_key_id=s3store.ACCESS_KEY,
        secret_access_key=s3store.SECRET_KEY,
        region=s3store.REGION,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    etag = str(obstore.head(store, "digits/1/model.onnx")["e_tag"]).strip('"')
    assert etag.endswith(f"-{-(-size // PART)}"), f"a multipart upload's ETag, not {etag}"
    got = obstore.get(store, "digits/1/model.onnx")
    assert got.attributes.get("sha256") == sha, got.attributes
    assert hashlib.sha256(bytes(got.bytes())).hexdigest() == sha
    meta = str(obstore.head(store, "digits/1/model.json")["e_tag"]).strip('"')
    assert "-" not in meta, "a small file goes up in one request"
