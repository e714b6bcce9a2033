-- Promote the rollout in progress now: the stable Deployment takes the candidate, skipping
-- the steps and pauses left (`kubectl onnxops rollout promote`). The operator acts on each
-- distinct value of onnxops.io/rollout-action once: "<action>/<RFC 3339 time>".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["onnxops.io/rollout-action"] = "promote/" .. os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
