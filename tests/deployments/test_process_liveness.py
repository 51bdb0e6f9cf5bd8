"""pid_alive(pid, role) while a process execs: the sandbox launcher (`python -m workers.sandbox … -- python -m
workers.router`) becomes the router by exec, and /proc/PID/cmdline reads empty for a moment in between. A
router checked in that moment was taken for dead ("Router did not start:" with an empty log)."""
import subprocess
import sys
import time

from workers.drivers.local import kill, pid_alive

# The launcher's stand-in: it names the module in its arguments, as the real one does, then execs a process
# that names it too.
EXECS = ("import os, sys; os.execv(sys.executable, [sys.executable, '-S', '-c', 'import time; time.sleep(2)', "
         "'workers.router'])")


def test_a_router_is_alive_throughout_the_exec_that_starts_it():
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-S", "-c", EXECS, "workers.router"], start_new_session=True)
        try:
            deadline = time.monotonic() + 0.3  # past the exec: the new image sleeps for 2 s
            while time.monotonic() < deadline:
                assert pid_alive(proc.pid, "router")
        finally:
            kill(proc.pid)
    assert not pid_alive(proc.pid, "router")


def test_a_process_running_something_else_is_not_ours():
    proc = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(2)"], start_new_session=True)
    try:
        time.sleep(0.2)
        assert pid_alive(proc.pid) and not pid_alive(proc.pid, "router")
    finally:
        kill(proc.pid)
