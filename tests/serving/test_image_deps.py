"""The serving image's dependency set, alone in a fresh venv, starts and serves.

No Docker engine: this installs exactly what serving-image/Dockerfile installs (the pinned
requirements.txt with --no-deps, then the package with --no-deps) and runs the entry point.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.fresh_venv import create, has_module
from support.serving_harness import REPO, Models, running

pytestmark = pytest.mark.slow

IMAGE = REPO / "serving-image"


def test_image_dependencies_alone_serve_a_model(models: Models, tmp_path: Path) -> None:
    python = create(
        tmp_path / "venv",
        ["--no-deps", "-r", str(IMAGE / "requirements.txt")],
        ["--no-deps", str(IMAGE)],
    )
    # Nothing of the operator or the pipeline came along.
    assert not has_module(python, "sklearn") and not has_module(python, "kopf")
    with running(tmp_path, python=str(python), model_uri=str(models.iris)) as server:
        answer = httpx.post(
            server.url + "/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 1
