"""Flower's task pages: a running run's progress shown as its stage line (config/flowertask.py, pure)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from config.flowertask import format_task, stage_line


@pytest.mark.parametrize(
    ("progress", "line"),
    [
        (
            {"stage": "running", "tool": "nmap", "tenant_id": "acme", "run_id": "r1", "elapsed_seconds": 12.0,
             "output_lines": 40},
            "running: elapsed_seconds=12.0 output_lines=40",
        ),
        ({"stage": "waiting_for_slot", "tool": "nmap", "tenant_id": "acme", "run_id": "r1", "ahead": 1},
         "waiting_for_slot: ahead=1"),
        ({"stage": "validating", "tool": "nmap", "tenant_id": "acme", "run_id": "r1"}, "validating"),
    ],
)  # fmt: skip
def test_a_progress_report_becomes_its_stage_and_numbers(progress: dict[str, object], line: str) -> None:
    assert stage_line(progress) == line
    assert format_task(SimpleNamespace(result=progress)).result == line


@pytest.mark.parametrize("result", [None, "{'status': 'ok'}", "cancelled: stopped at running", {"no": "stage"}])
def test_other_results_are_shown_as_flower_would(result: object) -> None:
    assert format_task(SimpleNamespace(result=result)).result == result
