"""Least privilege for the processes the local target starts: a model server unpickles whatever a user
logged, so it gets nothing it could misuse.

- an allow-listed environment (no DJANGO_SECRET_KEY, DATABASE_URL, Fernet keys, broker URLs, cloud
  credentials): `child_env()`;
- its own working directory (HOME and TMPDIR point into it; downloaded artifacts land there);
- when the control plane runs as root, an unprivileged user (`nobody` unless configured; root is refused),
  with no supplementary groups and `no_new_privs`;
- resource limits: address space (RLIMIT_AS), optional CPU seconds (RLIMIT_CPU), no core dumps.

The parent resolves all of it into a plan (`plan()`, which refuses with `SandboxError` and a message
saying what to configure), then starts `python -m workers.sandbox PLAN -- COMMAND…`; this launcher applies
the plan in the fresh, single-threaded child and execs the command, so the pid the parent records is
the server's. No Django here: the driver passes plain values.

When a path the server needs (the interpreter, the virtualenv, the code) lies under a directory the
unprivileged user cannot enter (a pyenv Python under a 0700 /root), the launcher gives the child a private
mount namespace in which that directory is an empty read-only tmpfs with only the needed paths bound back
in, so the rest of it (kubeconfigs, SSH keys) stays invisible to the model.
"""
import ctypes
import json
import os
import pwd
import resource
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSED_THROUGH = ("LANG", "LC_ALL", "TZ")  # harmless locale settings; everything else is named here


class SandboxError(Exception):
    """The sandbox cannot be set up as configured; the message says what to change."""


@dataclass(frozen=True)
class SandboxPolicy:
    run_as: str = "nobody"  # only used when the control plane runs as root
    memory_mb: int = 4096  # RLIMIT_AS; 0 = unlimited
    cpu_seconds: int = 0  # RLIMIT_CPU; 0 = unlimited (a server's CPU time only grows)


def child_env(*, workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a child: fixed entries, the locale, and what the caller names (`extra`,
    e.g. MLFLOW_TRACKING_URI). Nothing else of the control plane's environment is inherited."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    env.update({key: os.environ[key] for key in PASSED_THROUGH if key in os.environ})
    env.update(extra)
    return env


def plan(*, policy: SandboxPolicy, workdir: Path, reads: tuple[Path, ...] = ()) -> dict:
    """Resolve the policy for a child working in `workdir` (created, owned by the child's user, 0700) that
    also reads `reads` (besides the interpreter, the virtualenv and the code)."""
    user = None
    if os.geteuid() == 0:
        if not policy.run_as:
            raise SandboxError("The control plane runs as root, so model servers need an unprivileged user: "
                               "set DEPLOYMENTS_LOCAL_RUN_AS (e.g. nobody).")
        try:
            user = pwd.getpwnam(policy.run_as)
        except KeyError:
            raise SandboxError(f"DEPLOYMENTS_LOCAL_RUN_AS names user {policy.run_as!r}, which does not exist "
                               "on this host.") from None
        if user.pw_uid == 0:
            raise SandboxError(f"DEPLOYMENTS_LOCAL_RUN_AS={policy.run_as!r} is root; name an unprivileged user.")
    # Fresh on every start, and handed over only once built: as root we never touch (chown, chmod, follow
    # a symlink in) anything a previous sandboxed process could have left there.
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "tmp").mkdir(parents=True)
    for path in (workdir / "tmp", workdir):
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, 0o700)
    expose: dict[str, list[tuple[str, bool]]] = {}
    if user is not None:
        needed = {Path(p).resolve(): False for p in (sys.base_prefix, sys.prefix, ROOT, *reads)}
        needed[workdir.resolve()] = True
        for path, writable in sorted(needed.items()):
            blocker = _blocking_dir(path, user.pw_uid, user.pw_gid)
            if blocker == path:
                raise SandboxError(f"User {policy.run_as} (DEPLOYMENTS_LOCAL_RUN_AS) cannot open {path}; "
                                   "make it readable to others (chmod o+rx).")
            if blocker is not None:
                expose.setdefault(str(blocker), []).append((str(path), writable))
    return {"uid": user.pw_uid if user else None, "gid": user.pw_gid if user else None,
            "workdir": str(workdir), "memory_mb": policy.memory_mb, "cpu_seconds": policy.cpu_seconds,
            "expose": expose}


def command(sandbox_plan: dict, argv: list[str]) -> list[str]:
    # -S: the launcher needs only the standard library, and runs no site-packages hooks as root
    return [sys.executable, "-S", "-m", "workers.sandbox", json.dumps(sandbox_plan), "--", *argv]


def _blocking_dir(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` (or `path` itself) that user uid/gid cannot enter."""
    for directory in [*reversed(path.parents), path]:
        info = os.stat(directory)
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return directory
    return None


# ---------------------------------------------------------------- the launcher (runs in the child)

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}{args}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = (lambda v: v.encode() if v is not None else None)
    _libc_call("mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))


def _expose(expose: dict[str, list[tuple[str, bool]]]) -> None:
    """Private mount namespace: each blocking directory becomes an empty tmpfs with only the needed paths
    bound back (read-only unless it is the working directory), so the unprivileged user reaches them and
    nothing else there."""
    _libc_call("unshare", CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for blocker, paths in expose.items():
        handles = [os.open(path, os.O_PATH) for path, _ in paths]  # held across the tmpfs that hides them
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for (path, writable), handle in zip(paths, handles):  # sorted: a parent is bound before its children
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
            if not writable:
                _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
            os.close(handle)
        _mount(None, blocker, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def launch(sandbox_plan: dict, argv: list[str]) -> None:
    if sandbox_plan["expose"]:
        try:
            _expose(sandbox_plan["expose"])
        except OSError as exc:  # e.g. a container without CAP_SYS_ADMIN: refuse rather than run unconfined
            blocked = ", ".join(sandbox_plan["expose"])
            sys.exit(f"workers.sandbox: cannot give the process a private view of {blocked} ({exc}). Make the "
                     f"paths it needs reachable by uid {sandbox_plan['uid']} (chmod o+x {blocked}) or allow "
                     "mount namespaces (CAP_SYS_ADMIN).")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a core dump would hold whatever the model read
    if sandbox_plan["memory_mb"]:
        limit = sandbox_plan["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if sandbox_plan["cpu_seconds"]:
        seconds = sandbox_plan["cpu_seconds"]
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))  # SIGXCPU, then SIGKILL
    if sandbox_plan["uid"] is not None:
        os.setgroups([])
        os.setgid(sandbox_plan["gid"])
        os.setuid(sandbox_plan["uid"])
    _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.umask(0o077)
    os.chdir(sandbox_plan["workdir"])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: python -m workers.sandbox PLAN_JSON -- COMMAND [ARGS…]")
    launch(json.loads(sys.argv[1]), sys.argv[3:])
