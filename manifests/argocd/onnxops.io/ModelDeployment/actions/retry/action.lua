-- Retry an aborted rollout of the same spec.model from its first step
-- (`kubectl onnxops rollout retry`). The operator acts on each distinct value of
-- onnxops.io/rollout-action once: "<action>/<RFC 3339 time>".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["onnxops.io/rollout-action"] = "retry/" .. os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
