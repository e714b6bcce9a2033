-- Argo CD resource actions of a ModelDeployment (resource.customizations.actions.onnxops.io_ModelDeployment).
-- restart always; promote and abort while a rollout runs (a canary exists); retry once one
-- was aborted. Each writes the annotation the operator acts on once per distinct value, as
-- `kubectl onnxops rollout promote|abort|retry` does.
local actions = {}
actions["restart"] = {["disabled"] = false}
local rollout = {}
if obj.status ~= nil and obj.status.rollout ~= nil then
  rollout = obj.status.rollout
end
local running = rollout.candidate ~= nil and
  (rollout.phase == "Progressing" or rollout.phase == "Paused" or rollout.phase == "Inconclusive")
actions["promote"] = {["disabled"] = not running}
actions["abort"] = {["disabled"] = not running}
actions["retry"] = {["disabled"] = rollout.phase ~= "Aborted"}
return actions
