"""The README's API-tier quickstart, run as written: its settings, its worker command, its scope command and its
Python code, against a real worker and a server on 127.0.0.1. Two values change, each for a reason: the broker
(a database of the suite's Redis, not 6379/0) and the artifact store (this test's own); the server's port is a
free one in place of 8000."""

from __future__ import annotations

import http.server
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.launch import Worker, wait_until
from tests import readme
from tests.conftest import REDIS_URL, database_url, flushed_database
from tests.integration.helpers import client_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
QUICK_DB = database_url(REDIS_URL, 5)
BIN = Path(sys.executable).parent  # the .venv/bin the README's commands name


def commands(marker: str) -> list[list[str]]:
    """The commands of a marked shell block, one a line, with `.venv/bin/` read as this venv's."""
    venv = ".venv/bin/"
    lines = [shlex.split(line) for line in readme.block(marker).splitlines() if line.strip()]
    return [[str(BIN / word.removeprefix(venv)) if word.startswith(venv) else word for word in line] for line in lines]


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The quickstart's settings, and nothing else of the suite's, with its broker and artifact store moved."""
    settings = readme.exports(readme.block("quickstart: settings"))
    assert (
        settings["TOOLRUNNER_TOOL_NETWORK"] == "host" and settings["TOOLRUNNER_IMAGE_NMAP"] == "toolrunner-tools:local"
    )
    settings |= {"TOOLRUNNER_BROKER_URL": QUICK_DB, "TOOLRUNNER_ARTIFACT_URL": f"file://{tmp_path}/artifacts"}
    kept = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUNNER_")}
    return {**kept, **settings, "PYTHONPATH": str(ROOT)}  # the editable install of a fresh clone puts ROOT there


@pytest.fixture
def quickstart_worker(
    environment: dict[str, str], redis_url: str, tools_image: str, tmp_path: Path
) -> Iterator[Worker]:
    """The README's worker command, started with the quickstart's settings on a flushed database."""
    [command] = commands("quickstart: worker")
    assert command[1:3] == ["-A", "tasks"]
    with flushed_database(QUICK_DB), open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        running = Worker(process, "quickstart", tmp_path / "worker.log")
        producer = client_app(QUICK_DB)
        try:
            wait_until(lambda: bool(producer.control.ping(timeout=1.0)), 60, "the quickstart's worker to answer")
            yield running
        finally:
            running.stop()
            producer.close()


@pytest.fixture
def site() -> Iterator[int]:
    """A web server on 127.0.0.1 (what the quickstart's `python3 -m http.server` starts), on a free port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_the_readme_quickstart_scans_a_local_server_and_finds_its_port_open(
    quickstart_worker: Worker, environment: dict[str, str], site: int
) -> None:
    server, scope = commands("quickstart: scope")
    assert server[:3] == ["python3", "-m", "http.server"] and "8000" in server  # the fixture serves in its place
    added = subprocess.run(scope, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    code = readme.block("quickstart: python")
    assert code.count("8000") == 2, "the port is the server's, in the params and the expected output"
    ran = subprocess.run(
        [sys.executable, "-c", code.replace("8000", str(site))],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-4000:] + quickstart_worker.log_text()[-4000:]
    assert ran.stdout.strip() == f"ok [({site}, 'open')]"
