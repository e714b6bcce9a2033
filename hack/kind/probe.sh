#!/usr/bin/env bash
# Starts IMAGE as one kind node with the podman arguments kind v0.33.0's podman provider uses
# (pkg/cluster/internal/providers/podman/provision.go: commonArgs + runArgsForNode), waits for
# systemd to come up in it, prints its state, runs CHECK (a shell command, in the node) if given,
# and removes the container, its /var volume and its network whatever happened.
#   bash hack/kind/probe.sh IMAGE [CHECK]
#   PROBE_ENTRYPOINT=/sbin/init   systemd without kind's entrypoint (podman's systemd mode)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "kind-probe: $*" >&2; }
image="$1"; check="${2:-}"
name="onnxops-kind-probe"; net="onnxops-kind-probe"
CONTAINERS_CONF="$(bash "$here/host.sh" | tail -n1)"
export CONTAINERS_CONF
volume=""
cleanup() {
  podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
  [[ -z $volume ]] || podman volume rm -f "$volume" >/dev/null 2>&1 || true
  podman network rm -f "$net" >/dev/null 2>&1 || true
}
# PROBE_KEEP=1 leaves the node running to look into (remove it with: PROBE_KEEP= probe.sh's cleanup,
# or podman rm -f onnxops-kind-probe; podman network rm onnxops-kind-probe).
[[ -n ${PROBE_KEEP:-} ]] || trap cleanup EXIT
cleanup
podman network create "$net" >/dev/null
volume="$(podman volume create --label "$name=true")"
args=(--name "$name" --detach --tty --net "$net" --label "io.x-k8s.kind.cluster=$name"
  -e container=podman --cgroupns=private
  --hostname "$name" --label io.x-k8s.kind.role=control-plane --privileged
  --tmpfs /tmp --tmpfs /run --volume "$volume:/var:suid,exec,dev"
  --volume /lib/modules:/lib/modules:ro -e KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER)
[[ -z ${PROBE_ENTRYPOINT:-} ]] || args+=(--entrypoint "$PROBE_ENTRYPOINT")
log "podman run ${args[*]} $image"
podman run "${args[@]}" "$image" >/dev/null
# kind's entrypoint runs before it execs systemd: until then systemctl answers "offline".
deadline=$((SECONDS + ${PROBE_WAIT_S:-90})); state=""
while ((SECONDS < deadline)); do
  [[ "$(podman inspect -f '{{.State.Running}}' "$name")" == true ]] || { state="node exited"; break; }
  state="$(timeout 30 podman exec "$name" systemctl is-system-running --wait 2>/dev/null)" || true
  [[ $state == offline || -z $state ]] || break
  sleep 1
done
log "systemctl is-system-running --wait: ${state:-timed out}"
podman exec "$name" systemctl --failed --no-pager >&2 || true
rc=0
if [[ $state != running ]]; then
  log "systemd did not reach 'running'; the node's log:"
  podman logs "$name" 2>&1 | tail -n 40 >&2
  rc=1
fi
if [[ -n $check ]]; then
  log "in the node: $check"
  podman exec "$name" bash -c "$check" || rc=$?
fi
exit "$rc"
