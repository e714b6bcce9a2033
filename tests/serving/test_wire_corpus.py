"""The request corpus on the wire: every malformed request gets a clean JSON 4xx, is counted,
and leaves the server serving, and a run of the whole corpus leaves its memory where it was."""

from __future__ import annotations

import json

import httpx
import psutil
import pytest
from support.serving_harness import Server, metric
from test_bad_input import CORPUS
from wire_corpus import CASES, Case, answers, exchange


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_wire_case(iris_server: Server, case: Case) -> None:
    got = answers(exchange(iris_server.port, case.data), head_only_first=case.no_body)
    assert [a.status for a in got] == case.statuses, got
    first = got[0]
    for name, value in case.headers.items():
        assert first.headers.get(name) == value, first.headers
    if case.no_body:
        assert int(first.headers[b"content-length"]) > 0 and first.body == b""
    if first.status >= 400:
        assert first.headers[b"content-type"] == b"application/json"
        assert case.word.lower() in json.loads(first.body)["error"].lower()
    elif case.word:
        assert case.word.encode() in first.body
    if first.status == 204:
        assert b"content-length" not in first.headers and first.body == b""


def test_parser_errors_are_counted(iris_server: Server) -> None:
    def refused() -> float:
        text = httpx.get(iris_server.url + "/metrics").text
        return metric(text, "onnxops_requests_total", endpoint="other", code="400")

    before = refused()
    for _ in range(3):
        assert answers(exchange(iris_server.port, b"GARBAGE\r\n\r\n"))[0].status == 400
    assert refused() == before + 3


def _corpus_round(server: Server) -> None:
    for case in CASES:
        exchange(server.port, case.data)
    with httpx.Client(base_url=server.url) as client:
        for _, path, body, headers, status, _ in CORPUS:
            assert client.post(path, content=body, headers=headers).status_code == status


def test_the_corpus_leaves_memory_where_it_was(iris_server: Server) -> None:
    proc = psutil.Process(iris_server.proc.pid)
    _corpus_round(iris_server)  # allocator pools and caches settle in the first rounds
    _corpus_round(iris_server)
    before = proc.memory_info().rss
    for _ in range(15):
        _corpus_round(iris_server)
    grown = proc.memory_info().rss - before
    assert grown < 4 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 15 corpus rounds"
    assert httpx.get(iris_server.url + "/v2/health/ready").status_code == 200
