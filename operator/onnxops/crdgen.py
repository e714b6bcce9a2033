"""Renders the ModelDeployment CustomResourceDefinition from the pydantic models in `api.py`.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema: no
$ref, no titles, a type on every node, `nullable` instead of `anyOf [X, null]`, boolean
`exclusiveMinimum`. `openapi_schema` does that translation; `onnxops crd` prints the YAML.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from onnxops import api

# Keys of JSON Schema that a structural schema keeps as they are.
_PASSTHROUGH = (
    "description",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "enum",
    "format",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One JSON Schema node -> one structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node["anyOf"]]
        non_null = [o for o in options if o.get("type") != "null"]
        types = {o.get("type") for o in non_null}
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if types == {"integer", "string"}:
            # int | str is a Kubernetes quantity: int-or-string, the string form's pattern.
            string = next(o for o in non_null if o.get("type") == "string")
            integer = next(o for o in non_null if o.get("type") == "integer")
            limits: dict[str, Any] = {k: string[k] for k in ("pattern", "maxLength") if k in string}
            # The integer form's bounds too (`cpu: -1`): the apiserver applies `minimum` to
            # numbers only, so it and the string's pattern do not clash.
            limits.update({k: integer[k] for k in ("minimum", "maximum") if k in integer})
            outer = {k: v for k, v in outer.items() if k != "default"}
            return _convert({**outer, **limits, "type": "int-or-string"}, defs)
        if len(non_null) != 1:
            raise ValueError(f"cannot express anyOf {options} structurally")
        # Optional[X]: absent means unset; the default (None) is not rendered.
        kept = {k: v for k, v in outer.items() if not (k == "default" and v is None)}
        merged = {**non_null[0], **kept}
        return _convert(merged, defs)

    out: dict[str, Any] = {}
    kind = node.get("type")
    if kind == "int-or-string":
        out["x-kubernetes-int-or-string"] = True
    elif kind is not None:
        out["type"] = kind
    elif "enum" in node:
        out["type"] = "string"
    for key in _PASSTHROUGH:
        if key in node and key != "x-kubernetes-int-or-string":
            out[key] = node[key]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if "default" in node and node["default"] is not None and node["default"] != {}:
        out["default"] = node["default"]
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            required = set(node.get("required", ()))
            out["properties"] = {}
            for name, sub in node["properties"].items():
                prop = _convert(sub, defs)
                # A sub-object with a default factory defaults to {} so the apiserver
                # fills in its own nested defaults even when the user leaves it out.
                if name not in required and "anyOf" not in sub and "properties" in prop:
                    prop.setdefault("default", {})
                out["properties"][name] = prop
        if node.get("required"):
            out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _convert(extra, defs)
        elif extra is True and "properties" not in node:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if kind == "array":
        out["items"] = _convert(node.get("items", {}), defs)
    if kind == "object" and "maxLength" in node:  # pydantic's max_length on dicts
        out["maxProperties"] = out.pop("maxLength")
    return out


def openapi_schema(model: type[api.ApiModel]) -> dict[str, Any]:
    """Structural OpenAPI v3 schema of a pydantic model, with camelCase property names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _strip_defaults(node: dict[str, Any]) -> None:
    """Status is written by the operator; defaults there would only add noise."""
    node.pop("default", None)
    for sub in node.get("properties", {}).values():
        _strip_defaults(sub)
    if isinstance(node.get("items"), dict):
        _strip_defaults(node["items"])


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec_schema = openapi_schema(api.ModelDeploymentSpec)
    status_schema = openapi_schema(api.ModelDeploymentStatus)
    _strip_defaults(status_schema)
    status_schema.pop("required", None)
    # Before the operator's first write an object has no status, and kstatus (Flux, kpt)
    # reads "no conditions" as Current: a pipeline would pass before anything ran. The
    # apiserver applies this default on every read, so a new object says observedGeneration 0
    # (behind generation 1: InProgress) until the operator writes its own.
    status_schema["default"] = {"observedGeneration": 0}
    root = {
        "type": "object",
        "description": api.ModelDeployment.__doc__,
        "required": ["spec"],
        # The name also names the Service, which must be a DNS-1035 label.
        "x-kubernetes-validations": [
            {
                "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
                " && size(self.metadata.name) <= 63",
                "message": "metadata.name must be a DNS-1035 label (it names the Service)",
            }
        ],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    columns = [
        ("Pool", "string", ".status.pool"),
        ("Phase", "string", ".status.phase"),
        ("Ready", "string", ".status.ready"),
        ("Model", "string", ".status.model"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    # `kubectl get -o wide` adds why it is not Ready, the variant served and where.
    wide = [
        ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason'),
        ("Variant", "string", ".status.variant"),
        ("Endpoint", "string", ".status.endpoint"),
        # A rollout in progress: its phase, the step (0-based) and the canary's share of pods.
        ("Rollout", "string", ".status.rollout.phase"),
        ("Step", "integer", ".status.rollout.step"),
        ("Canary", "integer", ".status.rollout.canaryWeight"),
        ("Candidate", "string", ".status.rollout.candidateVersion"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "onnxops"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["onnxops"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        *({"name": n, "type": t, "jsonPath": p} for n, t, p in columns),
                        *({"name": n, "type": t, "jsonPath": p, "priority": 1} for n, t, p in wide),
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated by `onnxops crd` from operator/onnxops/api.py; do not edit.\n"


def render() -> str:
    """The CRD as the YAML text checked in at crds/modeldeployment.yaml."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def _run(_: argparse.Namespace) -> int:
    print(render(), end="")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crd", help="print the ModelDeployment CRD as YAML")
    parser.set_defaults(func=_run)
