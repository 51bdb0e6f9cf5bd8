"""What the OpenAPI schema says beyond what drf-spectacular reads from serializers: the one error shape, documented
on every operation for every 4xx the API answers, so clients (and the fuzzing in tests/api) can rely on it."""

ERROR_COMPONENT = "Error"

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every 4xx answer: what went wrong and what to fix.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Machine-readable: invalid, not_found, conflict, …"},
                "message": {"type": "string", "description": "What to fix, in a sentence"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "Field name → messages; empty when the error is not about one field",
                },
                "request_id": {"type": "string"},
            },
            "required": ["code", "message", "fields"],
        },
    },
    "required": ["error"],
    "example": {"error": {"code": "invalid", "message": "Invalid input. gpu_count: Ensure this value is less than "
                                                        "or equal to 1024.",
                          "fields": {"gpu_count": ["Ensure this value is less than or equal to 1024."]},
                          "request_id": "3b1f…"}},
}

# Every client error the API answers: validation (400), authentication (401), capability (403), unknown object
# (404), method (405), Accept (406), state (409), body size (413), media type (415), Idempotency-Key reuse (422),
# throttling (429).
ERROR_STATUSES = {
    "400": "Invalid input: the message and `fields` say what to fix",
    "401": "Not authenticated",
    "403": "Not allowed for this user, token scope or team",
    "404": "No such object (or not in your teams)",
    "405": "Method not allowed here",
    "406": "The Accept header asks for a type this operation does not produce",
    "409": "The object's state does not allow this now",
    "413": "Request body too large",
    "415": "Unsupported media type: send JSON (or multipart where the operation says so)",
    "422": "Idempotency-Key reused with a different request",
    "429": "Too many requests or attempts; retry later",
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error component and its 4xx responses on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "patch", "delete", "head", "options"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_STATUSES.items():
                responses.setdefault(code, {"description": description, "content": error})
    return result
