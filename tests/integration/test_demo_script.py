"""scripts/demo, the README's first command, passes end to end with scope enforced (its default)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_scans_its_tenants_scope_and_is_refused_outside_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUNNER_")}  # the demo's settings only
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo")], env=env, capture_output=True, text=True, timeout=540, check=False
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, output[-4000:]
    assert "demo: added 127.0.0.1" in output
    assert re.search(r"nmap for demo/nmap-1 \(task [^)]+\): 2 finding\(s\)", output), output[-4000:]
    assert re.search(r"ffuf for demo/ffuf-1 \(task [^)]+\): 3 finding\(s\)", output), output[-4000:]
    assert "'127.0.0.2': outside the tenant's scope" in output
