"""The OpenAPI schema says what the serializers enforce, and documents the error shape on every operation."""
import pytest


@pytest.fixture(scope="module")
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_operation_documents_its_4xx_with_the_error_shape(schema):
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) > 100
    for path, method, operation in operations:
        for status in ("400", "401", "403", "404", "409", "429"):
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]


def test_bounds_and_strict_types_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    admission = components["AdmissionRequestRequest"]["properties"]
    assert (admission["gpu_count"]["minimum"], admission["gpu_count"]["maximum"]) == (0, 100_000)
    assert components["QuotaSetRequest"]["properties"]["cohort"]["maxLength"] == 63
    assert components["MonitorCreateRequest"]["properties"]["min_rows"]["maximum"] == 2**31 - 1
    assert components["CanaryStepRequest"]["properties"]["pause"]["type"] == "boolean"
    assert components["StrategyRequest"]["properties"]["auto_switch"]["type"] == "boolean"
    assert "pattern" in components["ResourcesRequest"]["properties"]["cpu"]
    for name in request_components(schema):
        for field, spec in components[name].get("properties", {}).items():
            if spec.get("type") == "integer":
                assert "maximum" in spec and "minimum" in spec, (name, field)
            if spec.get("type") == "string" and "enum" not in spec \
                    and spec.get("format") not in ("binary", "uri", "uuid", "date-time", "date", "decimal"):
                assert "maxLength" in spec or "pattern" in spec, (name, field)


def request_components(schema) -> set[str]:
    """Components a request body refers to, directly or nested."""
    found, pending = set(), [op["requestBody"] for item in schema["paths"].values() for op in item.values()
                             if "requestBody" in op]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref and name not in found:
                found.add(name)
                pending.append(schema["components"]["schemas"][name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found
