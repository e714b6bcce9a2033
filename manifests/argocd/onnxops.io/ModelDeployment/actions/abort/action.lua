-- Abort the rollout in progress (`kubectl onnxops rollout abort`): the canary goes at once,
-- the stable pods are untouched, and the model reads RolloutAborted (UserAborted) until the
-- spec changes or a retry. The operator acts on each distinct value of
-- onnxops.io/rollout-action once: "<action>/<RFC 3339 time>".
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["onnxops.io/rollout-action"] = "abort/" .. os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
