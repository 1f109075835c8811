"""Hostile payloads at the task boundary (hypothesis): accepted and exact, or refused before any Docker call."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import docker
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasks import TaskInputError, app
from tasks.service import RunContext, RunRequest, execute, plan_run

pytestmark = pytest.mark.integration

identifiers = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), st.text(max_size=70))
names = st.one_of(
    st.from_regex(r"[a-z0-9._-]{1,20}(/[a-z0-9._-]{1,20}){0,2}", fullmatch=True),
    st.text(max_size=30),
    st.sampled_from(["../x", "/etc/passwd", "a/../../b", "a\x00b", "a\\b", ".", "a//b", "x" * 300]),
)
contents = st.one_of(st.text(max_size=2000), st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
files = st.dictionaries(names, contents, max_size=4)
scripts = st.one_of(st.just("cd /inputs && find . -type f | sort | xargs -r md5sum > /outputs/out.txt"), st.text())
LIMITS: dict[str, Any] = {"max_input_bytes": 16 << 10, "max_timeout_seconds": 30}


IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")


def has_problem(tenant: str, run: str, payload: dict[str, str], script: str) -> bool:
    """The documented rules, written out independently of the code that enforces them."""
    if not (IDENTIFIER.fullmatch(tenant) and IDENTIFIER.fullmatch(run)) or not script:
        return True
    if sum(len(v.encode()) for v in payload.values()) > LIMITS["max_input_bytes"]:
        return True
    dirs = {"/".join(n.split("/")[:i]) for n in payload for i in range(1, n.count("/") + 1)}
    return bool(dirs & payload.keys()) or any(bad_name(n) for n in payload)


def bad_name(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name or len(name.encode("utf-8", "replace")) > 1024:
        return True
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return True
    return any(seg in ("", ".", "..") or len(seg.encode()) > 255 for seg in name.split("/"))


def md5_lines(inputs: dict[str, str]) -> list[str]:
    """What busybox md5sum prints for the input files, as the tool sees them."""
    return [f"{hashlib.md5(v.encode()).hexdigest()}  ./{k}" for k, v in sorted(inputs.items())]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=identifiers, run=identifiers, payload=files, script=scripts)
def test_every_payload_is_refused_before_docker_or_runs_and_round_trips_exactly(
    docker_client: docker.DockerClient, busybox_image: str, tenant: str, run: str, payload: dict[str, str], script: str
) -> None:
    params = {"script": script, "timeout_seconds": 20}
    try:
        # plan_run takes no Docker client: a refusal here is, by construction, before any Docker call.
        plan = plan_run(app.catalogue, RunRequest("script", tenant, run, params, payload), **LIMITS)
    except TaskInputError:
        event("refused")
        assert has_problem(tenant, run, payload, script), "a payload within the documented rules was refused"
        return
    event("accepted")
    assert not has_problem(tenant, run, payload, script), "a payload breaking the documented rules was accepted"
    result = execute(plan, RunContext(docker_client, app.settings, "hostile-payload", lambda *_: None)).as_dict()
    assert result["tenant_id"] == tenant and result["run_id"] == run
    if script.startswith("cd /inputs") and result["status"] == "ok":
        event("round trip checked")
        assert [f["line"] for f in result["findings"]] == md5_lines(payload)
    volumes = docker_client.api.volumes(filters={"label": ["studio.task=hostile-payload"]})["Volumes"]
    assert not volumes, "a volume of this run was left behind"
