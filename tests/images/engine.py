"""The container engine the image tests drive: Docker where an engine runs, else podman.

podman gets the same two settings as hack/images/build.sh: the runc runtime (crun refuses hosts
with cgroups in hybrid mode) and resource limits no higher than this process's (raising them
needs CAP_SYS_RESOURCE, which a container host may not grant).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "images" / "build.sh"
# podman runs conmon with nproc 32768 where the shell has more; a test container needs few.
_NPROC_CAP = 4096


@dataclass(frozen=True)
class Images:
    """References of the two images built for a test session."""

    serving: str
    operator: str


class NoEngine(RuntimeError):
    """Neither a Docker engine nor podman can run containers here (the message says why)."""


@dataclass(frozen=True)
class Engine:
    name: str  # docker | podman
    command: tuple[str, ...]  # the engine with its global options

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.command[:1] + tuple(args[:2]))} failed ({result.returncode}):"
                f"\n{result.stdout}\n{result.stderr}"
            )
        return result

    def limits(self) -> list[str]:
        """`run` options that keep the container's limits within this process's."""
        if self.name != "podman":
            return []
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], _NPROC_CAP)
        if nproc == resource.RLIM_INFINITY or nproc < 0:
            nproc = _NPROC_CAP
        return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]

    def build_images(self, repo: str, tag: str) -> Images:
        """The serving and operator images, built by the project's own build script."""
        env = {**os.environ, "ENGINE": self.name, "IMAGE_REPO": repo, "IMAGE_TAG": tag}
        built = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            raise AssertionError(f"hack/images/build.sh failed:\n{built.stderr[-6000:]}")
        serving, operator = built.stdout.split()[-2:]
        return Images(serving, operator)


def detect() -> Engine:
    """Docker if its engine answers, else podman if it is installed and answers."""
    reasons = []
    if shutil.which("docker"):
        docker = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        if docker.returncode == 0:
            return Engine("docker", ("docker",))
        reasons.append("docker is installed but no Docker engine answers")
    else:
        reasons.append("no docker")
    if shutil.which("podman"):
        command = ("podman", "--runtime", "runc")
        probe = subprocess.run(
            [*command, "info"], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return Engine("podman", command)
        reasons.append(f"podman info failed: {probe.stderr.strip()[-300:]}")
    else:
        reasons.append("no podman (make system-deps installs it on Debian)")
    raise NoEngine("; ".join(reasons))


def image_tag() -> str:
    """A tag of this checkout's own, so worktrees testing at once don't retag each other's."""
    return "test-" + hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
