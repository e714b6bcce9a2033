"""The serving image's recipe: pins that match what the tests ran, non-root, a health check.

No Docker engine is needed: this reads the Dockerfile and requirements.txt.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
import pytest
from support.serving_harness import REPO, Models, running

IMAGE = REPO / "serving-image"


def _pins() -> dict[str, str]:
    pins = {}
    for line in (IMAGE / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"requirements.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_pins_cover_the_dependencies_and_match_the_tested_versions() -> None:
    pins = _pins()
    project = tomllib.loads((IMAGE / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]).lower()
        assert name in pins, f"{name} (a dependency) is not pinned in requirements.txt"
    for name, pinned in pins.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # not in this environment (a platform-specific wheel)
        assert installed == pinned, f"{name}: tested with {installed}, image pins {pinned}"


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (IMAGE / "Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*/v2/health/", final_stage, re.MULTILINE | re.DOTALL)
    assert "ONNXOPS_MODEL_CACHE_DIR=" in final_stage  # downloads go to the writable volume
    assert "pip install --no-deps -r" in text  # only the pinned set, nothing resolved at build


def test_the_server_writes_nothing_outside_its_cache_dir(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a read-only root filesystem only the cache volume is writable. ONNX Runtime would
    # write a telemetry id under $HOME/.cache at import unless told not to.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    with running(tmp_path, model_uri=str(models.iris)) as server:
        body = {"features": models.iris_x[:2].tolist()}
        assert httpx.post(server.url + "/predict", json=body).status_code == 200
    assert list(home.rglob("*")) == []


def test_the_image_serves_grpc_on_8081() -> None:
    final_stage = (IMAGE / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert "ONNXOPS_GRPC_PORT=8081" in final_stage
    assert re.search(r"^EXPOSE .*\b8081\b", final_stage, re.MULTILINE)


def test_checked_in_grpc_modules_match_the_protos(tmp_path: Path) -> None:
    # What serving-image/regen-grpc.sh writes, written afresh into tmp_path and compared.
    protos = sorted((IMAGE / "onnxops_serving" / "proto").glob("*.proto"))
    assert protos
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(IMAGE),
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *map(str, protos)],
        check=True,
    )  # fmt: skip
    fresh = sorted(tmp_path.rglob("*_pb2.py*"))
    assert len(fresh) == 2 * len(protos)
    for path in fresh:
        checked_in = IMAGE / path.relative_to(tmp_path)
        assert checked_in.read_text() == path.read_text(), (
            f"{checked_in} is stale: run regen-grpc.sh"
        )
