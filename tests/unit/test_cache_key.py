"""The result cache's key: everything that determines a run's output changes it, nothing else does (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.service.cachekey import cache_key

BASE: dict[str, Any] = {
    "tenant_id": "acme", "tool": "nuclei", "image_id": "sha256:aaa", "argv": ["nuclei", "-u", "x"],
    "inputs": {"targets.txt": b"example.com\n"}, "version": 1, "salt": "",
}  # fmt: skip


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
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_the_same_run_gets_the_same_key_whatever_the_input_order_or_text_type() -> None:
    inputs = {"b.txt": "two", "a.txt": b"one"}
    again = {"a.txt": "one", "b.txt": b"two"}
    assert cache_key(**{**BASE, "inputs": inputs}) == cache_key(**{**BASE, "inputs": again})


def test_the_key_is_a_sha256_hex_digest() -> None:
    key = cache_key(**BASE)
    assert len(key) == 64 and int(key, 16) >= 0
