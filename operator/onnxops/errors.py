"""Errors a user can cause and fix; the CLI prints them as one line and exits 2."""

from __future__ import annotations


class OnnxopsError(Exception):
    """Base class of every error onnxops raises on purpose."""


class UserInputError(OnnxopsError):
    """Bad input from the user: a missing file, a wrong column, an unknown name."""


class GateFailed(OnnxopsError):
    """A quality gate (parity, validation threshold) was missed; exit code 1."""
