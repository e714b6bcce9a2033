"""The shadow mirror's pure parts: its config file, the address rewrite, answer comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
from devcluster.servingpod import POD_ADDRESS_REWRITE, loopback_of, pod_ip
from onnxops_serving.mirror import agrees
from onnxops_serving.mirrorconfig import parse, parse_rewrite, rewrite_host

REWRITE = parse_rewrite("10.=127.")


def test_rewrite_applies_to_matching_prefixes_only() -> None:
    assert rewrite_host("10.128.0.7", REWRITE) == "127.128.0.7"
    assert rewrite_host("127.0.0.1", REWRITE) == "127.0.0.1"
    assert rewrite_host("110.0.0.1", REWRITE) == "110.0.0.1"
    # A malformed pair is skipped, the good ones kept.
    assert parse_rewrite("nonsense, 10.=127.,=x") == [("10.", "127.")]


def test_the_pod_runners_rewrite_is_loopback_of() -> None:
    pairs = parse_rewrite(POD_ADDRESS_REWRITE)
    for uid in ("a", "b", "0f3c", "uid-with-dashes"):
        assert rewrite_host(pod_ip(uid), pairs) == loopback_of(pod_ip(uid))


def test_parse_reads_the_contract_shape() -> None:
    raw = {
        "percent": 50,
        "targets": ["10.128.0.7:8080", "10.128.0.8:8080"],
        "stableVersion": "1",
        "candidateVersion": "2",
        "tolerance": 0.5,
    }
    config = parse(json.dumps(raw).encode(), REWRITE)
    assert config is not None
    assert (config.percent, config.candidate_version, config.tolerance) == (50.0, "2", 0.5)
    assert config.targets == [("127.128.0.7", 8080), ("127.128.0.8", 8080)]
    assert [config.next_target() for _ in range(3)] == [
        ("127.128.0.7", 8080),
        ("127.128.0.8", 8080),
        ("127.128.0.7", 8080),
    ]


@pytest.mark.parametrize(
    "raw",
    [b'{"percent": 0, "targets": ["127.0.0.1:1"]}', b'{"percent": 100, "targets": []}', b"{}"],
)
def test_percent_zero_or_no_targets_is_off(raw: bytes) -> None:
    assert parse(raw, []) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"percent": 101}', "percent 101"),
        (b'{"percent": "all"}', "percent 'all'"),
        (b'{"percent": 1, "targets": "127.0.0.1:1"}', "targets is not a list"),
        (b'{"percent": 1, "targets": ["127.0.0.1"]}', "not HOST:PORT"),
        (b'{"percent": 1, "targets": ["127.0.0.1:0"]}', "not HOST:PORT"),
        (b'{"percent": 1, "targets": [7]}', "not a string"),
        (b'{"percent": 1, "tolerance": -1}', "tolerance -1"),
        (b'{"percent": 1, "candidateVersion": 2}', "candidateVersion is not a string"),
    ],
)
def test_invalid_config_says_why(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(raw, [])


def test_classification_compares_labels_only() -> None:
    ours = [np.array([0, 2, 1]), np.array([[0.9, 0.05, 0.05]] * 3, dtype=np.float32)]
    assert agrees("classification", ours, [[0, 2, 1], [0.1] * 9], 0.0)
    assert not agrees("classification", ours, [[0, 1, 1], [0.1] * 9], 0.0)
    assert not agrees("classification", ours, [], 0.0)
    labels = [np.array([b"setosa", b"virginica"], dtype=object)]
    assert agrees("classification", labels, [["setosa", "virginica"]], 0.0)


def test_regression_compares_every_output_within_tolerance() -> None:
    ours = [np.array([[1.0], [2.0]], dtype=np.float32)]
    assert agrees("regression", ours, [[1.0, 2.0]], 0.0)
    assert not agrees("regression", ours, [[1.0, 2.25]], 0.2)
    assert agrees("regression", ours, [[1.0, 2.25]], 0.25)
    assert not agrees("regression", ours, [[1.0]], 1.0)  # a row missing
    assert not agrees("regression", ours, [[1.0, None]], 1.0)  # NaN never agrees
    assert not agrees("regression", ours, [], 1.0)
