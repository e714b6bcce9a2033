-- Argo CD resource actions of a ModelDeployment (resource.customizations.actions.onnxops.io_ModelDeployment).
local actions = {}
actions["restart"] = {["disabled"] = false}
return actions
