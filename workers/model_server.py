"""A small model server for the local target: loads one MLflow model with `mlflow.pyfunc.load_model`
and serves MLflow's scoring protocol on a loopback port.

    python -m workers.model_server --model-uri models:/fraud-classifier/1 --port 8123 --revision 3

GET /ping, /health → 200 once the model is loaded; GET /version → what is served;
POST /invocations with {"dataframe_split": …}, {"dataframe_records": …}, {"instances": …} or {"inputs": …}
→ {"predictions": [...]}. The local driver starts it through `workers.sandbox` (no secrets in its
environment, an unprivileged user, memory limits) and records its pid itself.
"""
import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _frame(payload):
    import pandas as pd

    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        return pd.DataFrame(split["data"], columns=split.get("columns"), index=split.get("index"))
    if "dataframe_records" in payload:
        return pd.DataFrame(payload["dataframe_records"])
    rows = payload.get("instances", payload.get("inputs"))
    if rows is None:
        raise ValueError("Expected one of dataframe_split, dataframe_records, instances or inputs.")
    return pd.DataFrame(rows)


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict(orient="records")
    return value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--revision", default="")
    args = parser.parse_args(argv)

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(args.model_uri)
    info = {"model_uri": args.model_uri, "revision": args.revision}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # the router logs requests; keep stdout for errors
            pass

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Revision", str(args.revision))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/ping", "/health"):
                self._send(200, {"status": "ok", **info})
            elif self.path == "/version":
                self._send(200, info)
            else:
                self._send(404, {"error": f"Unknown path {self.path}"})

        def do_POST(self):
            if self.path != "/invocations":
                self._send(404, {"error": f"Unknown path {self.path}"})
                return
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                predictions = _plain(model.predict(_frame(payload)))
            except Exception as exc:  # a bad request must not kill the server
                self._send(400, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, {"predictions": predictions, "revision": args.revision})

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: (server.server_close(), sys.exit(0)))
    print(f"serving {args.model_uri} on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
