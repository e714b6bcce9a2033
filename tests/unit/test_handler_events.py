"""Events about a model's load posted once per episode, however many handlers overlap: two
handlers that both read the failed status (the Deployment's change, and a serving pod's) each
compute "loaded again"; one ModelLoaded reaches the API (a fresh-clone CI run saw two)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from onnxops import handlers
from onnxops.reasons import Reason


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []

    def event(_body: Any, *, type: str, reason: str, message: str) -> None:
        sent.append((type, reason))

    monkeypatch.setattr(kopf, "event", event)
    monkeypatch.setattr(handlers, "_warned", {})
    monkeypatch.setattr(handlers, "_recovered", set())
    return sent


def _body(generation: int = 1) -> kopf.Body:
    return kopf.Body({"metadata": {"namespace": "ns", "name": "m", "generation": generation}})


FETCH_FAILED = ("Warning", Reason.MODEL_FETCH_FAILED, "s3://b/k: store unreachable (transient)")
LOADED = ("Normal", Reason.MODEL_LOADED, "1/1 serving pods loaded the model and are ready")


def test_overlapping_handlers_say_a_model_loaded_again_once(posted: list[tuple[str, str]]) -> None:
    handlers._post(_body(), [FETCH_FAILED])
    handlers._post(_body(), [FETCH_FAILED])  # the same cause, another handler: once
    handlers._post(_body(), [LOADED])
    handlers._post(_body(), [LOADED])  # a handler that read the failed status before
    assert posted == [FETCH_FAILED[:2], LOADED[:2]]


def test_a_later_failure_and_recovery_are_news_again(posted: list[tuple[str, str]]) -> None:
    handlers._post(_body(), [FETCH_FAILED])
    handlers._post(_body(), [LOADED])
    handlers._post(_body(), [FETCH_FAILED])  # the store went away again, same generation
    handlers._post(_body(), [LOADED])
    assert posted == [FETCH_FAILED[:2], LOADED[:2]] * 2


def test_other_events_are_not_held_back(posted: list[tuple[str, str]]) -> None:
    created = ("Normal", Reason.CREATED, "created Deployment m")
    handlers._post(_body(), [created, created])
    assert posted == [created[:2]] * 2
