"""What the test suites (and bench/) share: one builder of each artefact, and the harnesses.

`deployments` (the ModelDeployment builder), `factories` (models, a model origin),
`operator_kit` (kubectl, the operator process, waiting), `serving_harness` (the serving
runtime), `traffic` (requests to serving pods), `faults` (broken models), `readings` (what the
operator's status says), `benchrecord` (figures for bench/), `fresh_venv`. On the path through
pyproject's ``[tool.pytest.ini_options] pythonpath``; bench scripts put ``tests`` on it.
"""
