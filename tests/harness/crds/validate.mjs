// Reads a JSON list of Gateway API objects on stdin; writes a JSON list with, per object, the schema
// errors (empty when valid) found by the validators @kubernetes-models/gateway-api compiles from the
// upstream CRDs' OpenAPI schemas.
import * as v1 from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = objects.map((object) => {
  if (object.apiVersion !== "gateway.networking.k8s.io/v1" || !(object.kind in v1)) {
    return [`no gateway.networking.k8s.io/v1 schema for ${object.apiVersion} ${object.kind}`];
  }
  try {
    new v1[object.kind](object).validate();
    return [];
  } catch (error) {
    return (error.errors || [error]).map((e) => e.instancePath !== undefined
      ? `${e.instancePath || "/"}: ${e.message || e.keyword} ${JSON.stringify(e.params || {})}` : String(e));
  }
});
process.stdout.write(JSON.stringify(results));
