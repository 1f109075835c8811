"""Entrypoint of the toolrunner image: refuse a configuration that would run unsafely, else exec the command.

Celery retries a broker that refuses its password forever, and the docker SDK's missing certificates only
fail the first run: a worker so misconfigured would look alive. It exits here instead, with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

CERT_FILES = ("ca.pem", "cert.pem", "key.pem")


def problems(environ: Mapping[str, str], readable: Callable[[Path], bool]) -> list[str]:
    """Every reason not to start with this environment; empty when it may start."""
    return [*_broker_problems(environ), *_docker_problems(environ, readable)]


def _broker_problems(environ: Mapping[str, str]) -> list[str]:
    url = environ.get("TOOLRUNNER_BROKER_URL", "")
    if not url:
        return ["TOOLRUNNER_BROKER_URL is not set"]
    if not urlsplit(url).password:
        # Anyone who can write to the broker can enqueue runs: never a Redis without a password.
        return ["TOOLRUNNER_BROKER_URL has no password (redis://:PASSWORD@host:port/db)"]
    return []


def _docker_problems(environ: Mapping[str, str], readable: Callable[[Path], bool]) -> list[str]:
    host = environ.get("DOCKER_HOST", "")
    if not host.startswith("tcp://"):
        return []
    if environ.get("DOCKER_TLS_VERIFY") != "1":
        return [f"DOCKER_HOST={host} without DOCKER_TLS_VERIFY=1: the daemon would be reached unauthenticated"]
    directory = Path(environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    missing = [name for name in CERT_FILES if not readable(directory / name)]
    if missing:
        return [f"DinD client certificates not readable in {directory}: {', '.join(missing)}"]
    return []


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def main(argv: Sequence[str]) -> int:
    """Check the environment, then replace this process with argv."""
    if not argv:
        print("preflight: no command given", file=sys.stderr)
        return 2
    found = problems(os.environ, _readable)
    for problem in found:
        print(f"preflight: refusing to start: {problem}", file=sys.stderr)
    if found:
        return 78  # EX_CONFIG
    os.execvp(argv[0], list(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
