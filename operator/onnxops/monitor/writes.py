"""The monitor's writes: one ModelDeployment's status patch (only what changed, guarded by the
resourceVersion it was computed from) and its Events, and the bounded pool that runs the
cycle's writes side by side. Detection happens before, in order; only this I/O fans out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from onnxops import k8s
from onnxops.api import Fault, ModelDeployment
from onnxops.mergepatch import changes
from onnxops.monitor import report

EVENT_COMPONENT = "onnxops-operator"

T = TypeVar("T")


@dataclass(frozen=True)
class Written:
    """What one ModelDeployment's write did."""

    writes: int = 0
    events: int = 0


def write_status(
    body: Mapping[str, Any], patch_of: Callable[[ModelDeployment], dict[str, Any]]
) -> Written:
    """Write what the patch changes in `body`'s status (the object as read: defaults the model
    fills in are not on the server), against the version it was computed from; on a conflict,
    once more from a fresh read. Events follow the write that made the change."""
    for attempt in range(2):
        md = ModelDeployment.model_validate(dict(body))
        desired = patch_of(md)
        patch = changes(body.get("status") or {}, desired)
        if not patch:
            return Written()
        version = str(md.metadata.get("resourceVersion", ""))
        if k8s.patch_status_at(md.namespace, md.name, patch, version):
            new = [Fault.model_validate(f) for f in desired["faults"]]
            said = report.events(md.status.faults, new)
            for type_, reason, message in said:
                k8s.post_event(md.wire(), type_, reason, message, EVENT_COMPONENT)
            return Written(1, len(said))
        if attempt == 0:
            fresh = k8s.get(md.api_version, md.kind, md.namespace, md.name)
            if fresh is None:
                return Written()
            body = fresh
    return Written()


class Stopped(Exception):
    """The operator began to stop before this task started: it was not run."""


def run_bounded(
    tasks: Sequence[Callable[[], T]], size: int, stop: threading.Event | None = None
) -> list[T | BaseException]:
    """Run the tasks, at most `size` at a time, and wait for all of them: nothing outlives the
    call, so a slow apiserver makes this cycle long (and the next slot skipped), never a queue
    of writes behind it. One result per task, in order; a task's exception is its result.
    Once `stop` is set, tasks not yet started are not run (their result is `Stopped`): at
    1,000 models a cycle's queue kept the operator busy 30 s after SIGTERM.
    Size 1 runs them one after another in the calling thread."""
    run = partial(_outcome, stop=stop or threading.Event())
    if size <= 1 or len(tasks) <= 1:
        return [run(task) for task in tasks]
    with ThreadPoolExecutor(
        max_workers=min(size, len(tasks)), thread_name_prefix="onnxops-write"
    ) as pool:
        return list(pool.map(run, tasks))


def _outcome(task: Callable[[], T], stop: threading.Event) -> T | BaseException:
    if stop.is_set():
        return Stopped()
    try:
        return task()
    except Exception as exc:  # reported by the caller, per model
        return exc
