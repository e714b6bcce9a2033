-- Roll the model's pods, as `kubectl rollout restart` does for a Deployment: a new value of
-- the onnxops.io/restart-requested-at annotation goes into the pod template.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["onnxops.io/restart-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
