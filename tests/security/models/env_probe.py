"""An MLflow model (logged as code) that behaves like a malicious pickle: it reports what its process
can see — secrets in its environment, its uid, its resource limits, the parent's environment."""
import os

import mlflow.pyfunc
from mlflow.models import set_model


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


class EnvProbe(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        limits = {line[:26].strip(): line[26:].split()[0]
                  for line in _read("/proc/self/limits").splitlines()[1:] if line.strip()}
        try:  # as much as the whole address-space limit: the kernel must refuse it
            bytearray(int(limits.get("Max address space", "0").replace("unlimited", "0")) or 1)
            allocation = "allocated"
        except MemoryError:
            allocation = "MemoryError"
        return [{
            "environ": dict(os.environ),
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "cwd": os.getcwd(),
            "max_address_space": limits.get("Max address space"),
            "max_core_file_size": limits.get("Max core file size"),
            "allocating_the_limit": allocation,
            "parent_environ": _read(f"/proc/{os.getppid()}/environ"),
        }]


set_model(EnvProbe())
