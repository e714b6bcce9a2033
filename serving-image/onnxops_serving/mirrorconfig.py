"""The shadow mirror's configuration: a JSON file (a mounted ConfigMap key) watched for changes.

``{"percent": 100, "targets": ["10.1.2.3:8080"], "stableVersion": "1",
"candidateVersion": "2", "tolerance": 0.0}``; ``percent`` 0, no targets, a missing file or an
invalid one all mean "mirroring off" (the last two logged once per change, never fatal).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

Target = tuple[str, int]  # host, port


@dataclass
class MirrorConfig:
    """What to mirror, where, and how answers are compared."""

    percent: float
    targets: list[Target]
    candidate_version: str = ""
    tolerance: float = 0.0
    model: str = ""  # the name the candidate serves under; "" = the stable's own name
    _turn: Iterator[Target] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.targets)

    def next_target(self) -> Target:
        """Round-robin over the targets."""
        return next(self._turn)


def parse_rewrite(text: str) -> list[tuple[str, str]]:
    """``"10.=127.,192.168.=127.1."`` -> prefix pairs; a malformed pair is logged and skipped."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old:
            log.warning("ignoring mirror address rewrite %r: expected PREFIX=REPLACEMENT", item)
            continue
        pairs.append((old, new))
    return pairs


def rewrite_host(host: str, pairs: list[tuple[str, str]]) -> str:
    """The first matching prefix replaced: the local cluster's stand-in for pod routing."""
    for old, new in pairs:
        if host.startswith(old):
            return new + host[len(old) :]
    return host


def _target(raw: Any, pairs: list[tuple[str, str]]) -> Target:
    if not isinstance(raw, str):
        raise ValueError(f"target {raw!r} is not a string")
    host, sep, port = raw.removeprefix("http://").rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"target {raw!r} is not HOST:PORT")
    return rewrite_host(host, pairs), int(port)


def parse(raw: bytes, pairs: list[tuple[str, str]]) -> MirrorConfig | None:
    """The config in ``raw``, or None when it turns mirroring off. Raises ValueError if invalid."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    percent = doc.get("percent", 0)
    if type(percent) not in (int, float) or not 0 <= percent <= 100:
        raise ValueError(f"percent {percent!r} is not a number from 0 to 100")
    tolerance = doc.get("tolerance", 0.0)
    if type(tolerance) not in (int, float) or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance {tolerance!r} is not a number >= 0")
    targets = doc.get("targets", [])
    if not isinstance(targets, list):
        raise ValueError("targets is not a list")
    parsed = [_target(t, pairs) for t in targets]
    for key in ("candidateVersion", "model"):
        if not isinstance(doc.get(key, ""), str):
            raise ValueError(f"{key} is not a string")
    if percent == 0 or not parsed:
        return None
    return MirrorConfig(
        percent=float(percent),
        targets=parsed,
        candidate_version=doc.get("candidateVersion", ""),
        tolerance=float(tolerance),
        model=doc.get("model", ""),
    )


class ConfigFile:
    """Re-reads the file when its inode, size or mtime change; call ``poll`` once a second."""

    def __init__(self, path: str, rewrite: str) -> None:
        self.path = path
        self._pairs = parse_rewrite(rewrite)
        self._seen: tuple[int, int, int] | str | None = "unread"

    def poll(self) -> tuple[bool, MirrorConfig | None]:
        """``(changed, config)``; config None = off. Never raises."""
        try:
            st = os.stat(self.path)  # follows the ConfigMap volume's ..data symlink swap
        except OSError as exc:
            if self._seen is not None:
                self._seen = None
                log.warning("shadow mirroring off: cannot read %s (%s)", self.path, exc.strerror)
                return True, None
            return False, None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._seen:
            return False, None
        self._seen = key
        try:
            with open(self.path, "rb") as f:
                config = parse(f.read(), self._pairs)
        except (OSError, ValueError) as exc:
            log.warning("shadow mirroring off: %s is invalid: %s", self.path, exc)
            return True, None
        if config is None:
            log.info("shadow mirroring off (%s: percent 0 or no targets)", self.path)
        else:
            log.info(
                "shadow mirroring %g%% of requests to %s (candidate version %r)",
                config.percent,
                ", ".join(f"{h}:{p}" for h, p in config.targets),
                config.candidate_version,
            )
        return True, config
