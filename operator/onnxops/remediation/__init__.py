"""Heal: remediation of the faults the monitor finds (policy, guardrails, acting)."""
