"""Fixtures of the image tests: the container engine (skips the module only where neither
Docker nor podman can run containers, and says why) and the two images, built once per session
by hack/images/build.sh as `make images` builds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine import Engine, Images, NoEngine, detect, image_tag

# The serving tests' models (trained and exported for real) are reused here.
from support.serving_harness import Models, build_models


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return detect()
    except NoEngine as why:
        pytest.skip(f"no container engine can run containers here: {why}")


@pytest.fixture(scope="session")
def images(engine: Engine) -> Images:
    return engine.build_images("localhost/onnxops", image_tag())


@pytest.fixture(scope="session")
def image_models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return build_models(tmp_path_factory.mktemp("image-models"))


@pytest.fixture
def container_names(engine: Engine) -> Iterator[list[str]]:
    """Names of the containers a test starts; each is removed afterwards, even on failure."""
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            engine("rm", "--force", "--time", "0", name, check=False)
