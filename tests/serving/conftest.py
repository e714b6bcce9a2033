"""Fixtures for the serving runtime: real test models and real server processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.serving_harness import Models, Server, build_models, running


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def iris_server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(
        tmp_path_factory.mktemp("iris"),
        model_uri=str(models.iris),
        max_rows="500",
        max_body_bytes="65536",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def reg_server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("reg"), model_uri=str(models.regressor)) as server:
        yield server
