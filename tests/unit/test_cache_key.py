"""The result cache's key: everything that determines a run's output changes it, nothing else does (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.service import RunPlan
from tasks.service.cachekey import cache_key
from tasks.tools import Invocation, ToolParams, ToolSpec

BASE: dict[str, Any] = {
    "tenant_id": "acme", "tool": "nuclei", "image_id": "sha256:aaa", "argv": ["nuclei", "-u", "x"],
    "inputs": {"targets.txt": b"example.com\n"}, "version": 1, "salt": "",
}  # fmt: skip


def key(run_id: str = "scan-1", timeout_seconds: int = 600, **change: Any) -> str:
    """The key of a plan with BASE's parts, changed by `change`."""
    parts = {**BASE, **change}
    spec = ToolSpec(
        name=parts["tool"], image="tool:1", entrypoint=["tool"], params_model=ToolParams,
        build=lambda params: Invocation(argv=[]), parse=lambda outputs: iter(()), version=parts["version"],
    )  # fmt: skip
    invocation = Invocation(argv=parts["argv"])
    plan = RunPlan(spec, parts["tenant_id"], run_id, ToolParams(), invocation, parts["inputs"], timeout_seconds)
    return cache_key(plan, image_id=parts["image_id"], salt=parts["salt"])


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": "other"},
        {"tool": "httpx"},
        {"image_id": "sha256:bbb"},
        {"argv": ["nuclei", "-u", "y"]},
        {"argv": ["nuclei", "-u x"]},
        {"inputs": {"targets.txt": b"example.com\r\n"}},
        {"inputs": {"other.txt": b"example.com\n"}},
        {"inputs": {}},
        {"version": 2},
        {"salt": "2026-11"},
    ],
)
def test_any_part_that_determines_the_output_changes_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_the_run_id_and_the_timeout_leave_the_key_alone() -> None:
    assert key(run_id="scan-2", timeout_seconds=30) == key()


def test_the_same_run_gets_the_same_key_whatever_the_input_order_or_text_type() -> None:
    inputs = {"b.txt": "two", "a.txt": b"one"}
    again = {"a.txt": "one", "b.txt": b"two"}
    assert key(inputs=inputs) == key(inputs=again)


def test_the_key_is_a_sha256_hex_digest() -> None:
    digest = key()
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_the_key_of_a_run_never_changes_so_results_cached_before_an_upgrade_stay_found() -> None:
    assert key() == "7eb86af0f6bf660b2bf8db2c010da698ea8496805f1c5856c24a8d0341192153"
