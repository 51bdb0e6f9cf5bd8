#!/usr/bin/env python3
"""The local stack behind `make run` and `make test`.

Standard library only, so the system python3.11 runs it before the virtualenv exists.

  prepare   virtualenv and dependencies, PostgreSQL and Redis, the databases
  venv      only the virtualenv and dependencies
  services  only PostgreSQL, Redis and the databases
  run       prepare, then MLflow, migrations, demo seed, gunicorn, Celery workers (control, bulk) and beat;
            Ctrl-C stops them
  test      prepare, Chromium for the browser tests, the CRD schemas for the driver tests, the OpenID Connect
            provider for the SSO tests (npm ci), then pytest with $PYTEST_ARGS
  createdb  create the control plane and MLflow databases if missing (docker-compose uses it too)

Environment: DATABASE_URL and REDIS_URL point at servers you run (then nothing is started or
installed, only checked); MLFLOW_TRACKING_URI points `make run` at an MLflow server you run;
MLFLOW_PORT (5000) and WEB_PORT (8000) move the local ones; MLFLOW_BACKEND_STORE_URI overrides the
MLflow database (default: database `mlflow` on the DATABASE_URL server).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_BIN = VENV / "bin"
VENV_PYTHON = VENV_BIN / "python"
STAMP = VENV / ".devstack-deps"
VAR = ROOT / "var"
LOGS = VAR / "log"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/controlplane"  # as in controlplane/settings/base.py
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # as in controlplane/settings/tasks.py
CHROMIUM = Path("/usr/bin/chromium")

# Kept in step with apps/demo/seed.py by tests/demo/test_seed_demo.py.
DEMO_PASSWORD = "demo-pass-2026"
DEMO_LOGINS = [
    ("admin", "platform admin"),
    ("alice", "fraud: team_admin"), ("bob", "fraud: approver"), ("carol", "fraud: approver"),
    ("dave", "fraud: ml_engineer"), ("vera", "fraud: viewer"),
    ("sam", "search: team_admin"), ("erin", "search: ml_engineer"),
    ("fiona", "finance: every team's costs"),
]


class Failure(Exception):
    """Something the person running the command has to fix; the message says what."""


class Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --- virtualenv ------------------------------------------------------------------------------------

def _python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found:
        return found
    raise Failure("Python 3.11 is needed to create .venv and was not found. Install it "
                  "(Debian 12: apt-get install python3 python3-venv; elsewhere: pyenv install 3.11) and re-run.")


def _deps_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    if VENV_PYTHON.exists() and subprocess.run([str(VENV_PYTHON), "-c", ""], capture_output=True).returncode != 0:
        raise Failure(f"{rel(VENV_PYTHON)} does not start (was its Python removed?). Delete .venv and re-run.")
    if not VENV_PYTHON.exists():
        python = _python311()
        say(f"Creating .venv with {python}")
        if subprocess.run([python, "-m", "venv", str(VENV)]).returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            # Debian ships venv/ensurepip separately from the interpreter.
            if _can_apt():
                apt_install(["python3-venv"])
                if subprocess.run([python, "-m", "venv", str(VENV)]).returncode != 0:
                    raise Failure("Could not create .venv even after installing python3-venv.")
            else:
                raise Failure(f"`{python} -m venv .venv` failed. On Debian/Ubuntu install python3-venv "
                              "(sudo apt-get install python3-venv) and re-run.")
    digest = _deps_digest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        say("Dependencies are up to date (pyproject.toml and constraints.txt unchanged)")
        return
    say('Installing dependencies: pip install -c constraints.txt -e ".[test]" (minutes on a fresh .venv)')
    command = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[test]"]
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        raise Failure("pip install failed (see above).")
    STAMP.write_text(digest + "\n")


# --- PostgreSQL and Redis --------------------------------------------------------------------------

def _can_apt() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


_apt_updated = False


def apt_install(packages: list[str]) -> None:
    global _apt_updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        say("Running apt-get update")
        if subprocess.run(["apt-get", "update"], env=env).returncode != 0:
            raise Failure("apt-get update failed (see above).")
        _apt_updated = True
    say(f"Installing {' '.join(packages)} with apt-get (running as root on Debian/Ubuntu)")
    if subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], env=env).returncode != 0:
        raise Failure(f"apt-get install {' '.join(packages)} failed (see above).")


def reachable(host: str, port: int, timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(host, port):
            return True
        time.sleep(0.5)
    return False


def _pg_versions() -> list[str]:
    base = Path("/etc/postgresql")
    if not base.is_dir():
        return []
    return sorted((p.name for p in base.iterdir() if (p / "main").is_dir()), key=lambda v: [int(x) for x in
                                                                                           v.split(".") if x.isdigit()])


def _trust_loopback(version: str) -> None:
    """A cluster this script just installed: let the local postgres user in over TCP without a password,
    which is what the default DATABASE_URL expects (a dev machine only; nothing else listens remotely)."""
    hba = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
    rules = "host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust\n"
    text = hba.read_text()
    if rules not in text:
        hba.write_text("# Added by scripts/devstack.py for local development\n" + rules + text)
        say(f"Allowed user postgres to connect from loopback without a password ({hba})")


def start_postgres(host: str, port: int) -> None:
    installed_now = False
    if not (shutil.which("pg_ctlcluster") and _pg_versions()):
        if not _can_apt():
            raise Failure(
                f"PostgreSQL is not running on {host}:{port} and is not installed. Install PostgreSQL 15 or newer "
                "(Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql@15), let the "
                "user postgres connect from 127.0.0.1 without a password, start it and re-run; or set "
                "DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/controlplane for a server you run.")
        apt_install(["postgresql"])
        installed_now = True
    version = _pg_versions()[-1]
    if installed_now:
        _trust_loopback(version)
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
    if os.geteuid() != 0:
        raise Failure(f"PostgreSQL {version} is installed but not running on {host}:{port}. Start it: "
                      f"sudo {' '.join(command)}")
    say(f"Starting PostgreSQL: {' '.join(command)}")
    result = subprocess.run(command, capture_output=True, text=True)
    if installed_now:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"], capture_output=True)
    if not _wait_port(host, port, 30):
        raise Failure(f"PostgreSQL did not start on {host}:{port}: {(result.stderr or result.stdout).strip()} "
                      f"(log: /var/log/postgresql/postgresql-{version}-main.log)")


def start_redis(host: str, port: int) -> None:
    if not shutil.which("redis-server"):
        if not _can_apt():
            raise Failure(
                f"Redis is not running on {host}:{port} and is not installed. Install it (Debian/Ubuntu: sudo "
                "apt-get install redis-server; macOS: brew install redis), start it and re-run; or set "
                "REDIS_URL=redis://HOST:PORT/0 for a server you run.")
        apt_install(["redis-server"])
        # The package starts its own service where it can; then there is nothing left to do.
        if _wait_port(host, port, 5):
            return
    command = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no"]
    say(f"Starting Redis: {shlex.join(command)}")
    result = subprocess.run(command, capture_output=True, text=True, cwd="/tmp")
    if not _wait_port(host, port, 15):
        raise Failure(f"Redis did not start on {host}:{port}: {(result.stderr or result.stdout).strip()}")


def ensure_services() -> None:
    services = [
        ("PostgreSQL", "DATABASE_URL", DEFAULT_DATABASE_URL, 5432, start_postgres),
        ("Redis", "REDIS_URL", DEFAULT_REDIS_URL, 6379, start_redis),
    ]
    unreachable = []
    for name, variable, default, default_port, start in services:
        url = os.environ.get(variable) or default
        host, port = _host_port(url, default_port)
        if reachable(host, port):
            say(f"{name} is up on {host}:{port}")
        elif os.environ.get(variable):
            unreachable.append(f"{name} at {host}:{port} ({variable}={_mask(url)})")
        else:
            start(host, port)
            say(f"{name} is up on {host}:{port}")
    if unreachable:
        raise Failure("Not reachable: " + "; ".join(unreachable) + ". Start it or fix the variable.")
    ensure_databases()


def _mask(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def mlflow_backend_store_uri() -> str:
    """The SQLAlchemy URL of MLflow's own database: `mlflow` on the control plane's server unless set."""
    if os.environ.get("MLFLOW_BACKEND_STORE_URI"):
        return os.environ["MLFLOW_BACKEND_STORE_URI"]
    parsed = urllib.parse.urlsplit(database_url())
    return urllib.parse.urlunsplit(parsed._replace(scheme="postgresql+psycopg", path="/mlflow"))


def ensure_databases() -> None:
    # psycopg lives in the virtualenv; this script runs with whatever python started it.
    result = subprocess.run([str(VENV_PYTHON), str(Path(__file__).resolve()), "createdb"], cwd=ROOT)
    if result.returncode != 0:
        raise Failure("Could not create the databases (see above).")


def cmd_createdb() -> int:
    import psycopg
    from psycopg import sql

    for url in (database_url(), mlflow_backend_store_uri()):
        parsed = urllib.parse.urlsplit(url)
        dbname = urllib.parse.unquote(parsed.path.lstrip("/"))
        # libpq understands postgresql:// only, not SQLAlchemy's postgresql+psycopg://.
        admin = urllib.parse.urlunsplit(parsed._replace(scheme="postgresql", path="/postgres"))
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
                    say(f"Database {dbname} exists")
                    continue
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                    say(f"Created database {dbname}")
                except psycopg.errors.DuplicateDatabase:
                    say(f"Database {dbname} exists")
        except psycopg.OperationalError as exc:
            print(f"[devstack] Could not connect to PostgreSQL as {_mask(admin)}: {exc}".strip(), file=sys.stderr)
            print("[devstack] The default expects user postgres without a password on 127.0.0.1:5432; "
                  "set DATABASE_URL with the right credentials otherwise.", file=sys.stderr)
            return 1
    return 0


def prepare() -> None:
    ensure_venv()
    ensure_services()


# --- make run --------------------------------------------------------------------------------------

def _listener(port: int) -> str:
    """Best effort (Linux): which process listens on the port, for the 'already in use' message."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(fields[9])
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f" by pid {proc.name} ({cmdline if len(cmdline) <= 100 else cmdline[:99] + '…'})"
        except OSError:
            continue
    return ""


def _require_free(port: int, what: str) -> None:
    if reachable("127.0.0.1", port, timeout=0.5):
        raise Failure(f"Port {port} for {what} is already in use (http://127.0.0.1:{port}/){_listener(port)}. "
                      "Is another `make run` still running? Stop it (Ctrl-C) or free the port, then re-run.")


def _http_status(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Stack:
    """The processes `make run` started, each the leader of its own process group."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.procs: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.one_shots: set[str] = set()  # run-once commands still in procs: a clean exit is not a failure

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log_path = LOGS / f"{name}.log"
        with open(log_path, "w") as log:
            # A new session: the terminal's Ctrl-C reaches only this script, which stops the children in order.
            proc = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = (proc, log_path)
        return proc

    def start_once(self, name: str, command: list[str]) -> None:
        """Start a run-once command in the background; wait_once collects it."""
        self.start(name, command)
        self.one_shots.add(name)

    def wait_once(self, name: str) -> str:
        proc, log_path = self.procs[name]
        code = proc.wait()
        del self.procs[name]
        self.one_shots.discard(name)
        if code != 0:
            raise Failure(f"`{shlex.join(proc.args[1:])}` failed with exit status {code}. Last lines of "
                          f"{rel(log_path)}:\n{_tail(log_path, 40)}")
        return log_path.read_text(errors="replace")

    def run_once(self, name: str, command: list[str]) -> str:
        self.start_once(name, command)
        return self.wait_once(name)

    def check_alive(self) -> None:
        for name, (proc, log_path) in self.procs.items():
            if proc.poll() is not None and not (name in self.one_shots and proc.returncode == 0):
                raise Failure(f"{name} exited with status {proc.returncode}. Last lines of {rel(log_path)}:\n"
                              f"{_tail(log_path)}")

    def wait_http(self, url: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            self.check_alive()
            status, body = _http_status(url)
            if status == 200:
                return
            time.sleep(0.5)
        raise Failure(f"{what} did not answer 200 at {url} within {timeout:.0f}s (last: {status or 'no answer'} "
                      f"{body[:500]})")

    def stop_all(self) -> None:
        running = [(name, proc) for name, (proc, _) in reversed(list(self.procs.items()))]
        if not running:
            return
        say("Stopping " + ", ".join(name for name, _ in running))
        for _, proc in running:
            _signal_group(proc.pid, signal.SIGTERM, leader_only=True)
        deadline = time.monotonic() + 15
        for _, proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))  # also reaps the leader
            except subprocess.TimeoutExpired:
                pass
        # The leaders are gone (or stuck); anything left in their groups (workers the leader did not
        # reap, MLflow's uvicorn) gets SIGTERM, then SIGKILL.
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 2)):
            alive = [(name, proc) for name, proc in running if _group_alive(proc.pid)]
            if not alive:
                break
            for _, proc in alive:
                _signal_group(proc.pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_group_alive(proc.pid) for _, proc in alive):
                time.sleep(0.2)
        for _, proc in running:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        left = [name for name, proc in running if _group_alive(proc.pid)]
        if left:
            say("Could not stop: " + ", ".join(left))
        else:
            say("All processes stopped")
        self.procs.clear()


def _signal_group(pgid: int, sig: int, leader_only: bool = False) -> None:
    try:
        if leader_only:
            os.kill(pgid, sig)
        else:
            os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies don't count: where PID 1 does not reap
    orphans (some containers) they would linger in the group forever."""
    if not Path("/proc/self").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, parent pid, process group.
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _raise_stop(signum, frame):
    # Once stopping has begun, more Ctrl-C presses must not interrupt the clean-up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop()


STATIC_ROOT = Path(os.environ.get("CONTROLPLANE_DATA_DIR") or VAR) / "staticfiles"  # as in settings/base.py
STATIC_SOURCES = [ROOT / "frontend" / "static", ROOT / "constraints.txt"]


def collect_static(stack: "Stack") -> bool:
    """Start making hashed, compressed copies of the static files (frontend/staticfiles.py) in the background
    (stack.wait_once("collectstatic") collects it), only when our own assets or the pinned packages (plotly,
    swagger) changed since the last collection. Returns whether it started."""
    manifest = STATIC_ROOT / "staticfiles.json"
    newest = max(p.stat().st_mtime for source in STATIC_SOURCES
                 for p in ([source] if source.is_file() else source.rglob("*")))
    if manifest.exists() and manifest.stat().st_mtime >= newest:
        return False
    say(f"Collecting and compressing static files into {rel(STATIC_ROOT)} in the background (log: "
        f"{rel(LOGS / 'collectstatic.log')}); the first time takes a minute")
    # plotly's package_data also holds sample datasets and templates that no page loads.
    stack.start_once("collectstatic", [str(VENV_PYTHON), "manage.py", "collectstatic", "--noinput", "--clear",
                                     "--ignore", "datasets", "--ignore", "templates"])
    return True


def cmd_run() -> int:
    # Set explicitly: a shell that starts us in the background has SIGINT ignored, and make forwards SIGTERM.
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    web_port = int(os.environ.get("WEB_PORT", "8000"))
    mlflow_port = int(os.environ.get("MLFLOW_PORT", "5000"))
    external_mlflow = os.environ.get("MLFLOW_TRACKING_URI", "")
    stack = None
    try:
        _require_free(web_port, "the web server")
        if not external_mlflow:
            _require_free(mlflow_port, "MLflow")
        prepare()
        LOGS.mkdir(parents=True, exist_ok=True)
        tracking_uri = external_mlflow or f"http://127.0.0.1:{mlflow_port}"
        # DEBUG off unless asked for: pages link hashed static files (cached for a year) and an unknown URL
        # gets the 404 page, never Django's debug page listing every URL pattern.
        env = {"DJANGO_DEBUG": "0", **os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1",
               "MLFLOW_DISABLE_TELEMETRY": "true",  # no call to the internet, from MLflow's server or client
               "VIRTUAL_ENV": str(VENV), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               # MLflow's registry webhooks reach the web server on loopback (README → Registry).
               "MLFLOW_WEBHOOK_URL": os.environ.get("MLFLOW_WEBHOOK_URL") or
               f"http://127.0.0.1:{web_port}/api/v1/registry/mlflow-webhook/",
               "MLFLOW_WEBHOOK_SECRET": os.environ.get("MLFLOW_WEBHOOK_SECRET") or local_webhook_secret()}
        stack = Stack(env)
        # Compression needs no database: it runs beside MLflow's start, the migrations and the seed (2 cores
        # and more; one after the other they took 176 s from a fresh database, 56 s of it this).
        collecting = collect_static(stack)

        if external_mlflow:
            status, body = _http_status(f"{tracking_uri.rstrip('/')}/health")
            if status != 200:
                raise Failure(f"MLFLOW_TRACKING_URI={tracking_uri} does not answer /health ({status or body}).")
            say(f"Using the MLflow server at {tracking_uri}")
        else:
            artifacts = VAR / "mlflow-artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            say(f"Starting MLflow on {tracking_uri} (log: {rel(LOGS / 'mlflow.log')})")
            stack.start("mlflow", [
                str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", mlflow_backend_store_uri(),
                "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(mlflow_port),
                "--workers", "1",
            ], env={**env, "MLFLOW_TRACKING_URI": "", **MLFLOW_LOCAL_WEBHOOKS,
                    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": os.environ.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY")
                    or local_webhook_encryption_key()})

        say(f"Applying migrations (log: {rel(LOGS / 'migrate.log')})")  # while MLflow starts: the seed needs it
        stack.run_once("migrate", [str(VENV_PYTHON), "manage.py", "migrate", "--noinput"])
        if not external_mlflow:
            stack.wait_http(f"{tracking_uri}/health", 180, "MLflow")
            say("MLflow is healthy")
        say(f"Seeding demo data (log: {rel(LOGS / 'seed.log')})")
        print(stack.run_once("seed", [str(VENV_PYTHON), "manage.py", "seed_demo"]).rstrip(), flush=True)
        if collecting:
            stack.wait_once("collectstatic")

        say(f"Starting gunicorn, the control and bulk Celery workers and Celery beat (logs: {rel(LOGS)}/web.log, "
            "worker-control.log, worker-bulk.log, beat.log)")
        stack.start("web", [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--bind", f"127.0.0.1:{web_port}",
                            "--workers", "2", "--access-logfile", "-"])
        for name, command in worker_commands(VENV_BIN / "celery"):
            stack.start(name, command)
        stack.start("beat", [str(VENV_BIN / "celery"), "-A", "controlplane", "beat", "-l", "info"])
        url = f"http://127.0.0.1:{web_port}/"
        stack.wait_http(f"{url}readyz", 120, "The control plane")
        say(f"Registering the control plane's webhook in MLflow (log: {rel(LOGS / 'mlflow-webhook.log')})")
        try:
            stack.run_once("mlflow-webhook", [str(VENV_PYTHON), "manage.py", "mlflow_webhook_register",
                                              "--if-configured"])
        except Failure as exc:  # e.g. an external MLflow refusing http:// URLs: the scheduled passes still sync
            say(f"MLflow webhook not registered; the registry syncs every REGISTRY_SYNC_SECONDS instead. {exc}")

        width = max(len(name) for name, _ in DEMO_LOGINS)
        print("\n".join([
            "",
            f"  Control plane  {url}   (API docs {url}api/docs/, admin {url}admin/)",
            f"  MLflow         {tracking_uri}",
            f"  Demo logins, password {DEMO_PASSWORD}:",
            *(f"    {name.ljust(width)}  {role}" for name, role in DEMO_LOGINS),
            f"  Logs           {rel(LOGS)}/" + "{" + ",".join(stack.procs) + "}.log",
            "  Press Ctrl-C to stop everything.",
            "",
        ]), flush=True)
        while True:
            stack.check_alive()
            time.sleep(1)
    except Stop:
        say("Interrupted")
        return 0
    except Failure as exc:
        print(f"[devstack] {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            stack.stop_all()
            stop_local_model_servers()


# The MLflow server `make run` starts delivers registry webhooks to the web server: plain http on loopback
# (refused by default), with the webhook list re-read within 5 s of a registration (60 s by default).
MLFLOW_LOCAL_WEBHOOKS = {"MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                         "MLFLOW_WEBHOOK_CACHE_TTL": "5"}


def local_webhook_secret() -> str:
    """The MLflow webhook signing secret of this checkout, made once (var/mlflow-webhook-secret, mode 600)."""
    return _local_secret("mlflow-webhook-secret", lambda: secrets.token_urlsafe(32))


def local_webhook_encryption_key() -> str:
    """The key MLflow encrypts stored webhook secrets with, made once per checkout (var/mlflow-webhook-key, mode
    600; a Fernet key). Without it MLflow makes a new key each start and can no longer read the webhook it stored
    before: the next `make run` got a 500 listing webhooks and fell back to the scheduled syncs."""
    return _local_secret("mlflow-webhook-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


def _local_secret(name: str, make) -> str:
    path = VAR / name
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
    return path.read_text().strip()


def worker_commands(celery: Path | str, cpus: int | None = None) -> list[tuple[str, list[str]]]:
    """The Celery workers, one per queue (controlplane/settings/tasks.py): a rollback never waits behind a drift
    run. Bulk work also yields the CPU: it runs at a lower priority (nice 10) with one process fewer than there
    are cores (at most 4), so control work (rollouts, rollbacks, publishes) always has a core (bench/README.md: rollback
    latency with 20 drift runs queued)."""
    cpus = cpus or os.cpu_count() or 2
    worker = [str(celery), "-A", "controlplane", "worker", "-l", "info"]
    return [
        ("worker-control", [*worker, "-Q", "control", "-n", "control@%h", "--concurrency", "2"]),
        ("worker-bulk", ["nice", "-n", "10", *worker, "-Q", "bulk", "-n", "bulk@%h",
                         "--concurrency", str(max(1, min(cpus - 1, 4)))]),
    ]


def stop_local_model_servers() -> None:
    """Model servers and routers of the local deployment target run in their own process groups so a
    restarted worker can adopt them; Ctrl-C on `make run` still stops them. The next `make run`'s seed
    (and the reconcile beat) starts them again for deployments that should be serving."""
    base = Path(os.environ.get("DEPLOYMENTS_LOCAL_DIR") or Path(os.environ.get("CONTROLPLANE_DATA_DIR") or VAR)
                / "deployments")
    stopped = 0
    for pid_file in base.glob("deployment-*/*.pid"):
        try:
            pid = int(json.loads(pid_file.read_text())["pid"])
            ours = b"workers." in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ours:
            _signal_group(pid, signal.SIGTERM)
            stopped += 1
    if stopped:
        say(f"Stopped {stopped} local model server/router process(es) of the local deployment target")


# --- make test -------------------------------------------------------------------------------------

def ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if _can_apt():
        say(f"{CHROMIUM} is missing; the browser tests need it. Installing the chromium package with apt-get.")
        apt_install(["chromium"])
    else:
        say(f"Warning: {CHROMIUM} is missing, so the browser tests will fail. Install Chromium "
            "(Debian: sudo apt-get install chromium) and re-run.")


CRD_SCHEMAS = ROOT / "tests" / "harness" / "crds"


def ensure_crd_schemas() -> None:
    """The upstream Gateway API and KServe schemas the driver's rendered objects are checked against,
    installed test-side (never into the virtualenv: kserve's pins conflict with ours) when missing."""
    if not (CRD_SCHEMAS / "node_modules" / "@kubernetes-models" / "gateway-api").exists():
        if not shutil.which("npm"):
            if _can_apt():
                apt_install(["nodejs", "npm"])
            else:
                say("Warning: npm is missing, so the Gateway API schema tests will fail (Debian: apt-get install npm).")
                return
        say(f"Installing the Gateway API schemas in {rel(CRD_SCHEMAS)} (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CRD_SCHEMAS, check=True)
    if not (CRD_SCHEMAS / "python" / "kserve" / "models").exists():
        say(f"Installing the KServe SDK's models in {rel(CRD_SCHEMAS / 'python')} (pip --no-deps --target)")
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        str(CRD_SCHEMAS / "python"), "-r", str(CRD_SCHEMAS / "kserve-requirements.txt")], check=True)


OIDC_PROVIDER = ROOT / "tests" / "harness" / "oidc"


def ensure_oidc_provider() -> None:
    """The real OpenID Connect provider the SSO tests log in through (npm package oidc-provider, locked in
    tests/harness/oidc/package-lock.json), installed test-side when missing."""
    if (OIDC_PROVIDER / "node_modules" / "oidc-provider").exists():
        return
    if not shutil.which("npm"):
        if _can_apt():
            apt_install(["nodejs", "npm"])
        else:
            say("Warning: npm is missing, so the SSO tests will fail (Debian: apt-get install nodejs npm).")
            return
    say(f"Installing the OpenID Connect test provider in {rel(OIDC_PROVIDER)} (npm ci)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_PROVIDER, check=True)


CHAOS_TESTS = "tests/chaos"


def cmd_test() -> int:
    prepare()
    ensure_chromium()
    ensure_crd_schemas()
    ensure_oidc_provider()
    args = shlex.split(os.environ.get("PYTEST_ARGS", ""))
    pytest = VENV_BIN / "pytest"
    os.chdir(ROOT)
    if args:  # the tests asked for, in one process
        say(f"Running {shlex.join([rel(pytest), *args])}")
        os.execv(str(pytest), [str(pytest), *args])
    # The whole suite: one process per core (pytest-xdist; whole files to a process, so a module's fixtures are
    # built once; each process has its own test database and servers), then the chaos test alone: its time
    # bounds assume a machine it does not share.
    workers = min(max(os.cpu_count() or 1, 2), 4)
    code = 0
    for phase in ([f"-n{workers}", "--dist", "loadfile", f"--ignore={CHAOS_TESTS}"], [CHAOS_TESTS]):
        say(f"Running {shlex.join([rel(pytest), *phase])}")
        code = subprocess.run([str(pytest), *phase]).returncode or code
    return code


COMMANDS = {
    "prepare": lambda: prepare() or 0,
    "venv": lambda: ensure_venv() or 0,
    "services": lambda: ensure_services() or 0,
    "run": cmd_run,
    "test": cmd_test,
    "createdb": cmd_createdb,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]]()
    except Failure as exc:
        print(f"[devstack] {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
