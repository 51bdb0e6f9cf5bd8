from drf_spectacular.extensions import OpenApiAuthenticationExtension


class NodeTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.costs.authentication.NodeTokenAuthentication"
    name = "nodeToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "NVML agent node token: nt_<prefix>_<secret> (POST /api/v1/costs/node-tokens/)"}
