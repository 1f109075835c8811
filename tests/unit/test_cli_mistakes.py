"""Every mistake a person can make with `toolrunner` is one line on stderr and a non-zero exit, never a traceback.

The table runs through the real entry point, `tasks.cli.main()`, on a terminal narrower than the messages: in
this process where the command reads its settings afresh, in a new process where it goes through the Celery app
(whose settings a process reads once) or the Docker SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.cli import main

NO_BROKER = {"TOOLRUNNER_BROKER_URL": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}
LONGEST_RUN = "must exceed the longest run"

# (id, argv, environment, what the one line says, exit status)
MISTAKES = [
    ("get-into-a-missing-dir", ["artifacts", "get", "t1", "x", "--tenant", "acme", "-o", "missing-dir/x"], {},
     "-o missing-dir/x: no such directory: missing-dir", 2),
    ("get-into-a-dir", ["artifacts", "get", "t1", "x", "--tenant", "acme", "-o", "existing-dir/"], {},
     "-o existing-dir: is a directory", 2),
    ("get-with-a-missing-key-file", ["artifacts", "--url", "file:///nonexistent", "--master-key-file", "nokey",
     "get", "t1", "x", "--tenant", "acme"], {}, "--master-key-file nokey: cannot read it", 2),
    ("sweep-negative-age", ["sweep", "--max-age-hours", "-5"], {}, f"--max-age-hours=-5 (-18000s) {LONGEST_RUN}", 2),
    ("sweep-age-0-dry-run", ["sweep", "--max-age-hours", "0", "--dry-run"], {},
     f"--max-age-hours=0 (0s) {LONGEST_RUN}", 2),
    ("limit-of-an-unknown-tool", ["limits", "set", "--tenant", "acme", "--max-running", "1", "--tool", "nmpa"], {},
     "unknown tool 'nmpa'; known tools: absent, dnsx, ffuf,", 2),
    ("limit-of-an-invalid-tenant", ["limits", "set", "--tenant", "ac me", "--max-running", "1"], {},
     "tenant_id 'ac me' is invalid", 2),
    ("limit-out-of-range", ["limits", "set", "--tenant", "acme", "--max-running", "0"], {},
     "Invalid value for '--max-running'", 2),
    ("limits-without-broker", ["limits", "show"], NO_BROKER, "cannot reach the broker (TOOLRUNNER_BROKER_URL)", 1),
    ("cache-clear-without-broker", ["cache", "clear", "--tenant", "acme"], NO_BROKER, "cannot reach the broker", 1),
    ("scope-without-broker", ["scope", "show", "--tenant", "acme"], NO_BROKER, "cannot reach the broker", 1),
    ("params-of-an-unknown-tool", ["tools", "nmpa"], {}, "unknown tool 'nmpa'; known tools:", 2),
    ("run-an-unknown-tool", ["run", "nmpa", "--tenant", "acme"], {}, "unknown tool 'nmpa'; known tools:", 2),
    ("run-with-a-bad-param", ["run", "nmap", "--tenant", "acme", "-p", "targets=127.0.0.1", "-p", "top_ports=x"], {},
     "invalid params for nmap: top_ports:", 2),
    ("run-with-a-missing-file", ["run", "nmap", "--tenant", "acme", "-p", "targets=x", "-f", "a=missing.txt"], {},
     "cannot read missing.txt", 2),
    ("no-wait-without-broker", ["run", "nmap", "--tenant", "acme", "-p", "targets=x", "--no-wait"],
     {"TOOLRUNNER_BROKER_URL": ""}, "--no-wait is for runs through the queue", 2),
    ("cancel-without-tenant", ["cancel", "some-id"], {}, "Missing option '--tenant'", 2),
    ("cancel-of-an-invalid-tenant", ["cancel", "some-id", "--tenant", "a b"], {}, "tenant_id 'a b' is invalid", 2),
    ("an-unknown-command", ["frobnicate"], {}, "No such command 'frobnicate'", 2),
]  # fmt: skip

# In a process of their own: the Celery app reads its settings once a process, and the Docker SDK leaves the
# socket of a failed connection to the garbage collector (a ResourceWarning, an error in a later test here).
MISTAKES_IN_A_NEW_PROCESS = [
    ("sweep-without-engine", ["sweep", "--dry-run"], NO_ENGINE, "could not connect to the Docker Engine", 2),
    ("volumes-without-engine", ["volumes"], NO_ENGINE, "could not connect to the Docker Engine", 2),
    ("tools-without-engine", ["tools"], NO_ENGINE, "could not connect to the Docker Engine", 2),
    ("run-without-broker", ["run", "nmap", "--tenant", "acme", "-p", "targets=127.0.0.1"], NO_BROKER,
     "cannot reach the broker (TOOLRUNNER_BROKER_URL)", 1),
    ("cancel-without-broker", ["cancel", "some-id", "--tenant", "acme"], NO_BROKER, "cannot reach the broker", 1),
]  # fmt: skip


def assert_one_line(err: str, out: str, status: object, says: str, expected_status: int) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.count("\n") == 1 and err.startswith("error: "), err  # one line, however narrow the terminal
    assert says in err, err
    assert status == expected_status != 0
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "environment", "says", "status"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_mistake_is_one_line_on_stderr_and_a_nonzero_exit(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    environment: dict[str, str],
    says: str,
    status: int,
) -> None:
    (tmp_path / "existing-dir").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "40")  # narrower than every message: each stays one line
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.argv", ["toolrunner", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    assert_one_line(captured.err, captured.out, exited.value.code, says, status)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["existing-dir"], "nothing written, no temp file left behind"


@pytest.mark.parametrize(
    ("argv", "environment", "says", "status"),
    [m[1:] for m in MISTAKES_IN_A_NEW_PROCESS],
    ids=[m[0] for m in MISTAKES_IN_A_NEW_PROCESS],
)
def test_a_mistake_through_the_celery_app_is_one_line_too_and_quick(
    argv: list[str], environment: dict[str, str], says: str, status: int
) -> None:
    env = {**os.environ, "COLUMNS": "40", **environment}
    command = [sys.executable, "-c", "import sys; from tasks.cli import main; sys.argv[0] = 'toolrunner'; main()"]
    done = subprocess.run([*command, *argv], env=env, capture_output=True, text=True, timeout=20, check=False)
    assert_one_line(done.stderr, done.stdout, done.returncode, says, status)
