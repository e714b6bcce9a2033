-- Argo CD health of an onnxops ModelDeployment (onnxops.io/v1alpha1).
-- Install: argocd-cm, key resource.customizations.health.onnxops.io_ModelDeployment
-- (manifests/argocd/README.md). Argo CD reads health, not rollout progress, so a model that
-- serves with a fault the monitor found is Degraded here (kstatus: Current).
local hs = {status = "Progressing", message = "Waiting for the onnxops operator"}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0
if observed < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. said(stalled, "needs the user")
  return hs
end

local phase = obj.status.phase
local ready = condition("Ready")
if phase == "Failed" then
  -- a failure the operator retries by itself (say, a ConfigMap not applied yet)
  local reconciling = condition("Reconciling")
  hs.message = said(reconciling, said(ready, "retrying"))
  return hs
end
if phase == "Progressing" or phase == "Pending" or phase == nil then
  hs.message = said(ready, "rolling out")
  return hs
end
if phase == "Degraded" then
  hs.status = "Degraded"
  local healthy = condition("Healthy")
  local rolledBack = condition("RolledBack")
  if healthy ~= nil and healthy.status == "False" then
    hs.message = said(healthy, "faults found")
  elseif rolledBack ~= nil and rolledBack.status == "True" then
    hs.message = said(rolledBack, "serving an earlier model")
  else
    hs.message = said(ready, "degraded")
  end
  return hs
end
-- A rollout in progress (Reconciling=True, reason RolloutInProgress; status.rollout says
-- more): Progressing, or Suspended while spec.rollout.paused holds it, as Argo CD shows a
-- paused Argo Rollout. An aborted one is Stalled, so Degraded above.
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" and reconciling.reason == "RolloutInProgress" then
  local rollout = obj.status.rollout or {}
  if rollout.phase == "Paused" then
    hs.status = "Suspended"
  end
  hs.message = said(reconciling, "rolling out")
  return hs
end
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = said(ready, "serving")
  return hs
end
hs.status = "Unknown"
hs.message = "unknown phase " .. tostring(phase)
return hs
