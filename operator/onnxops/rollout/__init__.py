"""Progressive delivery of a new spec.model: a shadow, then canary weights, judged against the
stable version through Prometheus, then promoted or aborted.

`plan` says what the rollout asks of the children (pure), `machine` moves it from step to
step (pure, taking `now`), `analysis` turns readings into measurements (pure), `queries`
builds its PromQL, and `cycle` is the only part that reads or writes anything.
"""
