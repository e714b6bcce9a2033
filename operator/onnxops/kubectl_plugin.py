"""`kubectl-onnxops`: a kubectl plugin (`kubectl onnxops rollout ...`) over the rollout API.

It does only what the API can: pause/resume merge-patch `spec.rollout.paused`; promote, abort
and retry set the annotation `onnxops.io/rollout-action: "<action>/<RFC3339 time>"`, which
the operator acts on once per distinct value; status reads `status.rollout`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from kubernetes.config import ConfigException

from onnxops import api, k8s
from onnxops.reasons import RolloutPhase
from onnxops.rollout.plan import ACTION_ANNOTATION, ACTIONS

# --watch ends on these phases, with this exit code.
FINAL = {RolloutPhase.PROMOTED: 0, RolloutPhase.ABORTED: 1}
WATCH_PERIOD_S = 2.0  # a rollout step lasts tens of seconds; a poll is plenty and simple


class PluginError(Exception):
    """What the user can fix: printed as one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubectl onnxops", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    top = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    rollout = top.add_parser("rollout", help="watch and steer a ModelDeployment's rollout")
    verbs = rollout.add_subparsers(dest="verb", required=True, metavar="VERB")
    helps = {
        "status": "print status.rollout (--watch: follow it until Promoted or Aborted)",
        "pause": "set spec.rollout.paused: the rollout holds its step",
        "resume": "clear spec.rollout.paused",
        "promote": "skip the remaining steps and promote now",
        "abort": "abort now: the candidate goes, stable stays",
        "retry": "start the rollout of an aborted candidate again from step 0",
    }
    for verb, text in helps.items():
        cmd = verbs.add_parser(verb, help=text, description=text)
        cmd.add_argument("name", help="the ModelDeployment")
        cmd.add_argument("-n", "--namespace", help="default: the context's namespace")
        if verb == "status":
            cmd.add_argument("-w", "--watch", action="store_true", help="follow until it ends")
    return parser


# ---- pure: what is written, and how status reads ----------------------------------------


def action_value(action: str, now: datetime) -> str:
    """The annotation value: a distinct one per request, so the operator acts once on it."""
    return f"{action}/{now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def pause_patch(paused: bool, resource_version: str) -> dict[str, Any]:
    # The resourceVersion makes the patch conditional: a spec.rollout removed since the read
    # is a conflict, not a half-made rollout.
    return {
        "metadata": {"resourceVersion": resource_version},
        "spec": {"rollout": {"paused": paused}},
    }


def action_patch(value: str, resource_version: str) -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": resource_version, "annotations": {ACTION_ANNOTATION: value}}
    }


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _step_text(steps: list[dict[str, Any]], index: int) -> str:
    if not 0 <= index < len(steps):
        return ""
    step = steps[index]
    kind = f"shadow {step['shadow']}%" if "shadow" in step else f"weight {step.get('weight')}%"
    return f" ({kind}, pause {step.get('pauseSeconds', 0)}s)"


def format_status(md: dict[str, Any]) -> str:
    """``status.rollout`` as a few lines a person reads (the step counted from 1)."""
    meta, spec = md.get("metadata", {}), md.get("spec", {})
    plan = spec.get("rollout") or {}
    state = (md.get("status") or {}).get("rollout") or {}
    steps = plan.get("steps") or []
    lines = [f"ModelDeployment {meta.get('namespace')}/{meta.get('name')}"]
    if not state:
        lines.append("Phase:      (not started: the operator has not written status.rollout)")
    else:
        step = state.get("step")
        total = state.get("steps", len(steps))
        where = f"{step + 1}/{total}" if isinstance(step, int) else "-"
        lines += [
            f"Phase:      {state.get('phase', '-')}" + (" (paused)" if plan.get("paused") else ""),
            f"Step:       {where}{_step_text(steps, step if isinstance(step, int) else -1)}",
            f"Weight:     canary {_num(state.get('canaryWeight'))}%, "
            f"shadow {_num(state.get('shadowPercent'))}%",
            f"Versions:   stable {state.get('stableVersion', '-')}, "
            f"candidate {state.get('candidateVersion', '-')}",
            f"Failures:   {_num(state.get('failures', 0))}",
        ]
        if state.get("stepStartedAt"):
            lines.append(f"Step since: {state['stepStartedAt']}")
        if state.get("message"):
            lines.append(f"Message:    {state['message']}")
    pending = (meta.get("annotations") or {}).get(ACTION_ANNOTATION)
    if pending and pending != state.get("handledAction"):
        lines.append(f"Requested:  {pending} (not acted on yet)")
    measurements = state.get("measurements") or []
    if measurements:
        rows = [("SIGNAL", "STABLE", "CANDIDATE", "THRESHOLD", "VERDICT", "MESSAGE")]
        rows += [
            (
                str(m.get("signal", "-")),
                _num(m.get("stable")),
                _num(m.get("candidate")),
                _num(m.get("threshold")),
                str(m.get("verdict", "-")),
                str(m.get("message", "")),
            )
            for m in measurements
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines.append("Measurements:")
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
            for r in rows
        ]
    return "\n".join(line.rstrip() for line in lines)


# ---- I/O -----------------------------------------------------------------------------------


def _path(namespace: str, name: str) -> str:
    return k8s.object_path(f"{api.GROUP}/{api.VERSION}", api.KIND, namespace, name)


def _read(namespace: str, name: str) -> dict[str, Any]:
    md = k8s.get(f"{api.GROUP}/{api.VERSION}", api.KIND, namespace, name)
    if md is None:
        raise PluginError(f"ModelDeployment {namespace}/{name} not found")
    if not (md.get("spec") or {}).get("rollout"):
        raise PluginError(
            f"ModelDeployment {namespace}/{name} has no spec.rollout: it rolls out all at once "
            "(add spec.rollout to roll out step by step)"
        )
    return md


def _patch(namespace: str, name: str, body: dict[str, Any]) -> None:
    try:
        k8s.request(
            "PATCH", _path(namespace, name), body=body, content_type="application/merge-patch+json"
        )
    except k8s.ApiError as exc:
        if exc.status == 409:
            raise PluginError(
                f"ModelDeployment {namespace}/{name} changed meanwhile; run again"
            ) from None
        raise


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    context_namespace = k8s.use_kubeconfig(args.kubeconfig, args.context)
    namespace = args.namespace or context_namespace
    name, verb = args.name, args.verb
    md = _read(namespace, name)
    rv = md["metadata"]["resourceVersion"]
    ref = f"modeldeployment.{api.GROUP}/{name}"
    if verb in ("pause", "resume"):
        _patch(namespace, name, pause_patch(verb == "pause", rv))
        out(f"{ref} rollout {'paused' if verb == 'pause' else 'resumed'}")
        return 0
    if verb in ACTIONS:
        value = action_value(verb, datetime.now(UTC))
        _patch(namespace, name, action_patch(value, rv))
        out(f"{ref} rollout {verb} requested ({ACTION_ANNOTATION}={value})")
        return 0
    shown = format_status(md)
    out(shown)
    if not args.watch:
        return 0
    while True:
        phase = ((md.get("status") or {}).get("rollout") or {}).get("phase")
        if phase in FINAL:
            return FINAL[phase]
        time.sleep(WATCH_PERIOD_S)
        try:
            md = _read(namespace, name)
        except k8s.ApiUnavailable:
            continue  # an apiserver blip (or restart) does not end a watch; Ctrl-C does
        text = format_status(md)
        if text != shown:
            out("")
            out(text)
            shown = text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (PluginError, k8s.ApiError) as exc:  # ApiUnavailable is an ApiError too
        print(f"kubectl onnxops: error: {exc}", file=sys.stderr)
        return 1
    except (ConfigException, OSError) as exc:  # no kubeconfig, an unknown context
        print(f"kubectl onnxops: error: kubeconfig: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
