"""What the OpenAPI document (``/openapi.json``, ``/docs``) says that FastAPI cannot infer.

The endpoints read their bodies and write their answers themselves (for speed, and to take
JSON whatever the Content-Type), so FastAPI sees neither: the routes state here which
answers they give, with their schemas, and every error as the ``{"error": "..."}`` that
``errors.py`` answers with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from modelpilot.protocol.types import CONTROL_CHARACTERS
from modelpilot.registry.refs import NAME_RULE

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong, in a line."}},
}

_MEANINGS = {
    400: "The request could not be read: malformed JSON, a broken binary header, a bad request "
    "id, a version that is neither a number nor an alias name.",
    404: "No such model or version here (unknown, or not served), or no such endpoint.",
    413: "The request is over the size limit (MODELPILOT_MAX_REQUEST_BYTES).",
    422: "The request was read but does not fit: shapes, datatypes, features, labels.",
    503: "Overloaded, or the model is not ready yet: retry after `Retry-After` seconds.",
    504: "The model did not answer in time (MODELPILOT_REQUEST_TIMEOUT_SECONDS).",
}

ID_PATTERN = f"^[^{CONTROL_CHARACTERS}]*$"
"""A request id, as JSON Schema says it: no control characters."""

VERSION_IN_PATH: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$",
    "maxLength": 128,
    "description": f"A version number (1, 2, 3...) or an alias: {NAME_RULE}.",
}
"""The ``{version}`` of a path, as the server reads it (``registry.refs``): anything else is
answered 400, which the schema did not say."""

INFERENCE_ERRORS = (400, 404, 413, 422, 503, 504)
"""What a request for a prediction may be answered with, besides 200."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses`` for these error statuses, each ``{"error": "..."}``."""
    return {status: _json(ERROR_SCHEMA, _MEANINGS[status]) for status in statuses}


def answer(schema: dict[str, Any], description: str = "Successful Response") -> dict[str, Any]:
    """A route's ``responses[200]`` entry: a JSON body of ``schema``."""
    return _json(schema, description)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRINGS = {"type": "array", "items": {"type": "string"}}
TENSOR_SPEC = _object(
    ["name", "datatype", "shape"],
    name={"type": "string"},
    datatype={"type": "string", "example": "FP64"},
    shape={"type": "array", "items": {"type": "integer"}, "description": "-1: any size"},
)
TENSOR = _object(
    ["name", "datatype", "shape"],
    name={"type": "string"},
    datatype={"type": "string", "example": "FP64"},
    shape={"type": "array", "items": {"type": "integer", "minimum": 0}},
    parameters={"type": "object"},
    data={"type": "array", "items": {}, "description": "Absent when sent as binary data."},
)
MODEL_METADATA = _object(
    ["name", "versions", "platform", "inputs", "outputs"],
    name={"type": "string"},
    versions=_STRINGS,
    platform={"type": "string", "example": "sklearn"},
    inputs={"type": "array", "items": TENSOR_SPEC},
    outputs={"type": "array", "items": TENSOR_SPEC},
    parameters=_object([], feature_names=_STRINGS),
)
INFER_RESPONSE = _object(
    ["model_name", "model_version", "id", "outputs"],
    model_name={"type": "string"},
    model_version={"type": "string"},
    id={"type": "string", "description": "The request id (also in x-request-id)."},
    outputs={"type": "array", "items": TENSOR},
)
PREDICT_RESPONSE = _object(
    ["model", "version", "id", "predictions", "outputs"],
    model={"type": "string"},
    version={"type": "string"},
    id={"type": "string", "description": "The request id (also in x-request-id)."},
    predictions={"type": "array", "items": {}, "description": "The model's first output."},
    outputs={"type": "object", "description": "Every output, by name."},
)


def tidy(app: FastAPI) -> None:
    """Have ``app`` document its errors as they are answered.

    FastAPI gives every route with parameters a 422 of its own validation format; here a
    route's 422 is the one it states (if it can answer one at all)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if "HTTPValidationError" in str(responses.get("422", "")):
                        del responses["422"]
                    _versions_as_read(operation.get("parameters", ()))
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _versions_as_read(parameters: Any) -> None:
    """A ``version`` parameter as the server reads it: in a path, a number or an alias
    (``VERSION_IN_PATH``); in a query, a number from 1 (``params.VersionNumber``)."""
    for parameter in parameters:
        if parameter.get("name") != "version":
            continue
        if parameter.get("in") == "path":
            parameter["schema"] = {**VERSION_IN_PATH, "title": "Version"}
        elif parameter.get("in") == "query":
            schema = parameter.get("schema", {})
            for branch in schema.get("anyOf", [schema]):
                if branch.get("type") == "integer":
                    branch["minimum"] = 1
