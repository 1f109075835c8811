"""Collecting a parser's findings as they stream: the first ones that fit the inline budget, and the true count."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Finding = dict[str, Any]
Sink = Callable[[Finding], None]
Parser = Callable[[Any], Iterator[Finding]]


@dataclass
class Findings:
    """What a run returns inline, how many findings there were in all, and whether parsing stopped early."""

    inline: list[Finding] = field(default_factory=list)
    count: int = 0
    truncated: bool = False
    parse_error: str | None = None


def collect(
    findings: Iterable[Finding],
    inline_bytes: int,
    also: Sink | None = None,
    interruptions: tuple[type[BaseException], ...] = (),
) -> Findings:
    """Consume findings one at a time, keeping the first that fit `inline_bytes` of JSON.

    Every finding is counted and handed to `also` (the full set's artifact, where there is one), so none
    is dropped silently. A parser that fails mid-way ends the iteration: what it yielded before stays,
    and `parse_error` says why. Parsers run on a tool's output, which the tool's target controls, so any
    exception they raise (RecursionError on deep JSON included) is the output's fault, not the worker's;
    only the caller's `interruptions` (and errors of `also`) propagate.
    """
    result = Findings()
    used = 2  # the list's brackets
    stream = iter(findings)
    while (finding := _next(stream, result, interruptions)) is not None:
        result.count += 1
        if also is not None:
            also(finding)
        if result.truncated:
            continue
        size = len(json.dumps(finding, separators=(",", ":"))) + 1
        if used + size > inline_bytes:
            result.truncated = True
            continue
        used += size
        result.inline.append(finding)
    return result


def _next(
    stream: Iterator[Finding], result: Findings, interruptions: tuple[type[BaseException], ...]
) -> Finding | None:
    """The parser's next finding; None at the end or when it fails (recorded in `result.parse_error`)."""
    try:
        return next(stream)
    except StopIteration:
        return None
    except interruptions:
        raise
    except Exception as exc:
        logger.warning("a tool's output could not be parsed after %d finding(s): %r", result.count, exc)
        result.parse_error = f"{type(exc).__name__}: {exc}"[:500]
        return None


def marked(parse: Parser, fields: tuple[str, ...], outside: Callable[[str], bool] | None) -> Parser:
    """The parser, its findings marked `out_of_scope: true` when none of the `fields` they have names a host in the
    tenant's scope (kept, never dropped: a tool that wandered shows where); unchanged without a scope. Any field in
    scope is enough: a finding about www.example.com at an address outside an address-only scope is in scope by name."""
    if outside is None or not fields:
        return parse

    def parse_marked(outputs: Any) -> Iterator[Finding]:
        for finding in parse(outputs):
            hosts = [str(finding[f]) for f in fields if finding.get(f) not in (None, "")]
            if hosts and all(outside(host) for host in hosts):
                finding["out_of_scope"] = True
            yield finding

    return parse_marked
