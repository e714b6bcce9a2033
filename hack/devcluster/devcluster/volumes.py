"""A serving pod's volumes, materialised on this machine as the kubelet does, and bound to the
container's mount paths by rewriting paths (there is no mount namespace).

- ``configMap`` / ``secret``: the keys (``data`` and ``binaryData``; ``items`` and
  ``defaultMode``/``mode`` honoured) are written with the kubelet's atomic writer: a fresh
  ``..<timestamp>`` directory, the ``..data`` symlink swapped to it with one ``rename``, and each
  key a symlink through ``..data`` — so a reader sees the old set or the new one, never a mix.
  `PodVolumes.refresh` rewrites them when the object changed (the kubelet's periodic sync).
- ``projected``: its configMap and secret sources, the same way (no service account token).
- ``emptyDir``: a fresh directory, removed with the pod.
- ``persistentVolumeClaim``: the claim's bound PV with a ``hostPath`` or ``local`` path is used
  in place (never removed: its data outlives the pod, as on a node).

`PodVolumes.host_path` maps a path inside the container (``/models/model.onnx``) to the host
path the process uses; the runner rewrites the container's environment with `rewrite_env`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# GET one API path; None when the object does not exist.
Getter = Callable[[str], Mapping[str, Any] | None]

DEFAULT_MODE = 0o644
DATA_LINK = "..data"


class VolumeError(RuntimeError):
    """A volume cannot be set up yet (the kubelet's FailedMount); retried later."""


@dataclass(frozen=True)
class Mount:
    """One ``volumeMounts`` entry bound to a host directory."""

    mount_path: str
    host_dir: Path


def _object_files(obj: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    files = {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    for key, value in (obj.get("data") or {}).items():
        files[key] = base64.b64decode(value) if kind == "Secret" else str(value).encode()
    return files


def projection(
    obj: Mapping[str, Any] | None, source: Mapping[str, Any], kind: str
) -> dict[str, tuple[bytes, int]] | None:
    """The files (relative path -> bytes, mode) a configMap/secret volume shows; None when the
    object is missing (an ``optional`` source then shows nothing)."""
    if obj is None:
        if source.get("optional"):
            return {}
        return None
    files = _object_files(obj, kind)
    default = int(source.get("defaultMode", DEFAULT_MODE))
    items = source.get("items")
    if not items:
        return {key: (data, default) for key, data in files.items()}
    chosen: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in files:
            if source.get("optional"):
                continue
            raise VolumeError(f"{kind} has no key {item['key']!r}")
        chosen[item["path"]] = (files[item["key"]], int(item.get("mode", default)))
    return chosen


def atomic_write(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Show exactly ``files`` under ``directory``, switched over in one rename (the kubelet's
    AtomicWriter): ``..<ts>/`` holds the payload, ``..data`` points at it, keys link through."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, (data, mode) in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    link = directory / DATA_LINK
    old = os.readlink(link) if link.is_symlink() else None
    tmp = directory / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp.name)
    os.replace(tmp, link)  # the switch: readers see all the old files or all the new ones
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        entry = directory / top
        if not entry.is_symlink():
            entry.symlink_to(f"{DATA_LINK}/{top}")
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()  # a key that went away
    if old is not None and old != stamp.name:
        shutil.rmtree(directory / old, ignore_errors=True)


class PodVolumes:
    """The volumes of one pod under ``root`` (``<pods dir>/<uid>``), with the container's
    mounts bound to them."""

    def __init__(self, pod: Mapping[str, Any], container: Mapping[str, Any], root: Path) -> None:
        self.namespace: str = pod["metadata"]["namespace"]
        self.root = root
        self.volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
        self.container_mounts = list(container.get("volumeMounts") or [])
        self.mounts: list[Mount] = []
        self._seen: dict[str, str] = {}  # volume name -> resourceVersion written

    def _path(self, kind: str, name: str) -> str:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets", "PVC": "persistentvolumeclaims"}
        return f"/api/v1/namespaces/{self.namespace}/{plural[kind]}/{name}"

    def _sources(self, volume: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
        """(kind, object name, source) of a configMap, secret or projected volume. Of a
        ``projected`` volume only its configMap and secret sources are shown (a service account
        token is never minted here: the serving runtime never talks to the API)."""
        if "configMap" in volume:
            return [("ConfigMap", volume["configMap"]["name"], volume["configMap"])]
        if "secret" in volume:
            return [("Secret", volume["secret"]["secretName"], volume["secret"])]
        found: list[tuple[str, str, Mapping[str, Any]]] = []
        projected = volume.get("projected") or {}
        for source in projected.get("sources") or []:
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key in source:
                    mode = {"defaultMode": projected.get("defaultMode", DEFAULT_MODE)}
                    found.append((kind, source[key]["name"], {**mode, **source[key]}))
        return found

    def _projected(self, name: str, volume: Mapping[str, Any], get: Getter) -> Path | None:
        if not any(key in volume for key in ("configMap", "secret", "projected")):
            return None
        directory = self.root / "volumes" / name
        objects = [
            (kind, ref, src, get(self._path(kind, ref))) for kind, ref, src in self._sources(volume)
        ]
        version = ",".join(
            str((obj or {}).get("metadata", {}).get("resourceVersion", "absent"))
            for *_, obj in objects
        )
        if self._seen.get(name) == version and directory.exists():
            return directory
        files: dict[str, tuple[bytes, int]] = {}
        for kind, ref, source, obj in objects:
            shown = projection(obj, source, kind)
            if shown is None:
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{name}" : {kind.lower()} "{ref}" not found'
                )
            files.update(shown)
        atomic_write(directory, files)
        self._seen[name] = version
        return directory

    def _volume_dir(self, name: str, get: Getter) -> Path:
        volume = self.volumes.get(name)
        if volume is None:
            raise VolumeError(f"volumeMount refers to unknown volume {name!r}")
        projected = self._projected(name, volume, get)
        if projected is not None:
            return projected
        if "emptyDir" in volume:
            directory = self.root / "volumes" / name
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        if "persistentVolumeClaim" in volume:
            return self._claim_dir(name, volume["persistentVolumeClaim"]["claimName"], get)
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        raise VolumeError(f"volume {name!r}: type {sorted(set(volume) - {'name'})} not supported")

    def _claim_dir(self, name: str, claim: str, get: Getter) -> Path:
        pvc = get(self._path("PVC", claim))
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = get(f"/api/v1/persistentvolumes/{pv_name}")
        spec = (pv or {}).get("spec") or {}
        local = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not local:
            raise VolumeError(
                f'volume "{name}": PV {pv_name} has no hostPath or local path on this machine'
            )
        path = Path(local)
        if not path.is_dir():
            raise VolumeError(f'volume "{name}": PV {pv_name} path {local} is not a directory')
        return path

    def set_up(self, get: Getter) -> None:
        """Materialise every mounted volume (raises `VolumeError`, nothing half-bound)."""
        mounts = []
        for entry in self.container_mounts:
            directory = self._volume_dir(entry["name"], get)
            if entry.get("subPath"):
                directory = directory / entry["subPath"]
            mounts.append(Mount(str(entry["mountPath"]).rstrip("/") or "/", directory))
        # Longest mount path first: /models/extra wins over /models.
        self.mounts = sorted(mounts, key=lambda m: len(m.mount_path), reverse=True)

    def refresh(self, get: Getter) -> None:
        """Rewrite configMap/secret volumes whose object changed (a failed read keeps the old)."""
        for entry in self.container_mounts:
            volume = self.volumes.get(entry["name"]) or {}
            if any(key in volume for key in ("configMap", "secret", "projected")):
                with contextlib.suppress(VolumeError, OSError):
                    self._projected(entry["name"], volume, get)

    def host_path(self, path: str) -> str | None:
        """The host path for a path inside the container, or None if no mount covers it."""
        for mount in self.mounts:
            if path == mount.mount_path or path.startswith(mount.mount_path + "/"):
                return str(mount.host_dir) + path[len(mount.mount_path) :]
        return None

    def rewrite_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with each value that is a path (or ``file://`` URI) under a mount rebound."""
        out = dict(env)
        for key, value in env.items():
            prefix, path = ("file://", value[7:]) if value.startswith("file:///") else ("", value)
            if path.startswith("/") and not (path == "/tmp" or path.startswith("/tmp/")):
                bound = self.host_path(path)
                if bound is not None:
                    out[key] = prefix + bound
        # A /tmp mount becomes TMPDIR only: the process shares the host's file system, and a
        # host path under /tmp (a test's model file) must stay the host's.
        tmp = self.host_path("/tmp")
        if tmp is not None:
            out.setdefault("TMPDIR", tmp)
        return out

    def remove(self) -> None:
        """Remove what this pod owns (its emptyDirs and projections; never a PV's data)."""
        shutil.rmtree(self.root, ignore_errors=True)
