"""Validating run requests before any Docker call (pure, with the test tool and the real catalogue)."""

from __future__ import annotations

from typing import Any

import pytest

from tasks import app
from tasks.errors import TaskInputError
from tasks.service import RunRequest, plan_run

LIMITS: dict[str, Any] = {"max_input_bytes": 1000, "max_timeout_seconds": 100}


def plan(tool: object = "script", tenant: object = "acme", run: object = "r1", params: object = None,
         files: object = None, **limits: Any) -> Any:  # fmt: skip
    params = {"script": "true"} if params is None else params
    return plan_run(app.catalogue, RunRequest(tool, tenant, run, params, files), **{**LIMITS, **limits})


def test_a_valid_request_becomes_a_plan_with_the_tools_invocation() -> None:
    result = plan(params={"script": "echo hi", "outputs": ["o.txt"]}, files={"cfg/a.yaml": "a: 1"})
    assert result.invocation.argv == ["-c", "echo hi"]
    assert result.invocation.output_files == ["o.txt"]
    assert result.inputs == {"cfg/a.yaml": "a: 1"}
    assert result.timeout_seconds == 60 and result.input_bytes == 4


def test_the_timeout_comes_from_params_and_is_capped_by_config() -> None:
    assert plan(params={"script": "true", "timeout_seconds": 5}).timeout_seconds == 5
    assert plan(params={"script": "true", "timeout_seconds": 5000}).timeout_seconds == 100


def test_a_timeout_over_its_cap_is_capped_and_the_plan_says_so_in_its_notices() -> None:
    capped = plan(params={"script": "true", "timeout_seconds": 5000})
    assert capped.notices == ("timeout_seconds=5000 was capped to 100 by TOOLRUNNER_MAX_TIMEOUT_SECONDS",)
    assert plan(params={"script": "true", "timeout_seconds": 100}).notices == ()
    assert plan().notices == (), "a tool's own default is the operator's business, not a notice"


def test_a_cache_age_over_its_cap_is_capped_and_said_where_the_cache_is_used() -> None:
    asked = {"script": "true", "cache_max_age_seconds": 999999, "timeout_seconds": 99999}
    assert plan(params=asked, max_cache_age_seconds=86400).notices == (
        "timeout_seconds=99999 was capped to 100 by TOOLRUNNER_MAX_TIMEOUT_SECONDS",
        "cache_max_age_seconds=999999 was capped to 86400 by TOOLRUNNER_CACHE_MAX_AGE_SECONDS",
    )
    assert plan(params={**asked, "cache_max_age_seconds": 60}, max_cache_age_seconds=86400).notices[1:] == ()
    assert len(plan(params=asked).notices) == 1, "without a cache (in this process) its age is not a notice"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tool": "nope"}, r"unknown tool 'nope'; known tools: .*ffuf.*nmap"),
        ({"tool": None}, "unknown tool None"),
        ({"tenant": "a b"}, "tenant_id 'a b' is invalid"),
        ({"tenant": ""}, "tenant_id '' is invalid"),
        ({"run": "x" * 65}, "run_id 'x+' is invalid"),
        ({"params": {"script": "true", "surprise": 1}}, "invalid params for script.*surprise"),
        ({"params": {"script": "true", "timeout_seconds": 0}}, "timeout_seconds"),
        ({"params": ["script"]}, "params must be a JSON object"),
        ({"files": {"../x": "y"}}, r"'\.\.'"),
        ({"files": {"a": b"bytes"}}, "str contents"),
        ({"files": ["a"]}, "must map file names"),
        ({"files": {"big": "x" * 1001}}, "over the cap of 1000"),
    ],
)
def test_bad_requests_are_refused_with_a_message_that_says_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskInputError, match=message):
        plan(**kwargs)


def test_extra_files_may_not_replace_the_tools_own_inputs() -> None:
    with pytest.raises(TaskInputError, match="may not replace"):
        plan_run(
            app.catalogue,
            RunRequest("nmap", "acme", "r", {"targets": ["127.0.0.1"], "ports": "80"}, {"targets.txt": "10.0.0.1"}),
            **LIMITS,
        )  # fmt: skip
