"""A remedy as the policy proposes it and the guardrails admit it (`Action`). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from onnxops.api import ActionKind, ModelRef
from onnxops.pools import Resources
from onnxops.reasons import HealReason, Signal

# Right-sizing down: the reason of a resize that lowers resources after long low use
# (`status.lowUse`, which is not a fault signal).
LOW_USE = HealReason.LOW_USE
DISRUPTIVE: frozenset[str] = frozenset(
    {"restart", "rolloutRestart", "failover", "failback", "rollback"}
)

RESOURCE_OF: dict[str, str] = {
    Signal.OOM_KILLED: "memory",
    Signal.MEMORY_UTILIZATION: "memory",
    Signal.CPU_THROTTLING: "cpu",
    Signal.CPU_UTILIZATION: "cpu",
}


@dataclass(frozen=True)
class Action:
    """One remedy the policy proposes."""

    kind: ActionKind
    reason: str
    """The fault (signal) it answers."""
    message: str
    pods: tuple[str, ...] = ()
    resources: Resources | None = None
    """resize: the wanted requests/limits (before the guardrails' ceilings)."""
    pool: str | None = None
    model: ModelRef | None = None

    @property
    def disruptive(self) -> bool:
        """Whether serving pods go away (a resize in place does not)."""
        return self.kind in DISRUPTIVE

    @property
    def resource(self) -> str | None:
        """resize: which resource grows (`cpu` or `memory`); None for a shrink."""
        return RESOURCE_OF.get(self.reason) if self.kind == "resize" else None

    @property
    def shrinks(self) -> bool:
        """A resize down after long low use (it may lower both resources)."""
        return self.kind == "resize" and self.reason == LOW_USE
