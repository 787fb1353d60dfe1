"""The OpenAPI document as the API answers: the project's error shape on every error status.

FastAPI documents its own ``HTTPValidationError`` for a 422 while ``api.errors`` answers every
error with ``ErrorPublic``; ``install_openapi`` rewrites the generated document so that every
4xx/5xx of every operation names ``ErrorPublic``, adds the 422 every operation with parameters
or a body can answer (and the 413 of any body over ``MAR_MAX_BODY_BYTES``), and drops FastAPI's
validation schemas. An optional query or header parameter is documented as its type alone:
FastAPI writes ``anyOf [type, null]``, but a parameter is absent or a string, never JSON ``null``
(a client reading the document would send ``Last-Event-ID: null``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas import ErrorPublic

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
_METHODS = ("get", "post", "put", "patch", "delete")


def multipart_upload_body(file_description: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its multipart form itself (so that the key and the
    size are checked before the body): a required ``file`` and the optional text ``fields``."""
    properties = {"file": {"type": "string", "format": "binary", "description": file_description}, **fields}
    schema = {"type": "object", "required": ["file"], "additionalProperties": False, "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's ``anyOf [X, {type: null}]`` as ``X`` (its title, description, default kept)."""
    options = schema.get("anyOf")
    if not options or {"type": "null"} not in options:
        return schema
    rest = [o for o in options if o != {"type": "null"}]
    kept = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**rest[0], **kept} if len(rest) == 1 else {**kept, "anyOf": rest}


def fix_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``ErrorPublic`` on every error response and no ``null`` parameters
    (changed in place, returned)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(
        ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
    )
    schemas["ErrorPublic"] = ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}")
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if method not in _METHODS:
                continue
            for param in op.get("parameters", ()):
                param["schema"] = _without_null(param.get("schema", {}))
            responses = op.setdefault("responses", {})
            if op.get("parameters") or op.get("requestBody") or responses.get("401"):
                responses.setdefault("422", _error_response("Invalid request (the param names what)"))
            if op.get("requestBody"):
                responses.setdefault("413", _error_response("Request body too large"))
            for code, resp in responses.items():
                if code[0] in "45" and code != "503":
                    resp["content"] = _ERROR
                    resp.setdefault("description", "Error")
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve ``fix_document`` of the generated document at ``/openapi.json`` (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = fix_document(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
