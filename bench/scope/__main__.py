"""Checking N targets against a scope of N entries, canonicalisation included, beside a naive double loop.

    python -m bench.scope [--sizes 1000,10000,100000] [--comparisons 5000000]

The compiled path is the worker's: every entry text through tasks.scope.entry.parse, Scope.of (merged sorted
intervals and suffix sets), then tasks.scope.check.refusals over the run's targets (each read by host.read as
its tool reads it, checked against the operator's policy and the scope; names handed to a resolver that
resolves nothing, so DNS is not timed). "check" is that last part alone: a worker pays it on every admission,
and the first two only when the tenant's scope changed (each worker process caches the compiled scope until its
version token changes), so the 50 ms target is the check's. The naive loop canonicalises the same way and then
compares every target with every entry (ipaddress subnet_of / overlaps, string suffixes). Past
--comparisons target-entry pairs it is timed on an evenly spaced sample of the targets and extrapolated to
all of them, as the table says. Both must refuse exactly the same targets of the sample, or the benchmark
fails. The policy (deny list, private ranges) is built once, untimed: a worker builds it at start.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rich.table import Table

from bench.common import BenchError, console, table, usable_cpus, verdict
from bench.scope import naive
from bench.scope.workload import Workload, workload
from config import Settings
from tasks.errors import ScopeEntryError
from tasks.scope.check import Checker, refusals
from tasks.scope.entry import Entry
from tasks.scope.matcher import Scope
from tasks.scope.policy import policy, unresolved
from tasks.scope.store import canonical, memoised
from tasks.tools import Target, ToolSpec
from tasks.tools.nmap import SPEC as NMAP

TARGET_N, TARGET_MS, TARGET_RATIO = 10_000, 50.0, 50.0
V4, V6 = 16, 48  # the default TOOLRUNNER_SCOPE_MAX_PREFIX_V4 / _V6
MOST_REFUSED = 0.15  # the workload draws ~7% of its targets outside the scope or excluded


@dataclass(frozen=True)
class Row:
    """One size's measurements, in milliseconds (medians of the repeats, and the best compiled run)."""

    n: int
    compile_ms: float
    recompile_ms: float  # after one entry was added, the worker's parsed entries kept
    check_ms: float
    check_best_ms: float  # the fastest check: the run least disturbed by other work on the machine
    best_ms: float  # the fastest parse + compile plus the fastest check
    naive_ms: float
    sample: int  # targets the naive loop was timed on (n: all of them)
    refused: int


def main() -> None:
    """Measure every size and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated N (targets = entries = N)")
    parser.add_argument("--comparisons", type=int, default=5_000_000, help="most pairs the naive loop runs whole")
    args = parser.parse_args()
    checker = Checker(policy(Settings(scope_deny=(), scope_allow_private=())), unresolved, 1.0)
    spec = replace(NMAP, targets=lambda targets: targets)  # the targets as given: no params model in the way
    rows = [_measure(workload(n), spec, checker, args.comparisons) for n in _sizes(args.sizes)]
    _print(rows)


def _sizes(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def _measure(load: Workload, spec: ToolSpec, checker: Checker, comparisons: int) -> Row:
    n = len(load.targets)
    repeats = max(3, min(20, 200_000 // n))

    def compiled() -> Scope:
        include = canonical(load.entries, max_prefix_v4=V4, max_prefix_v6=V6)
        return Scope.of(include, canonical(load.exclusions, max_prefix_v4=V4, max_prefix_v6=V6))

    scope = compiled()
    refused = {r.target for r in refusals(spec, load.targets, scope, checker)}
    if len(refused) > n * MOST_REFUSED:  # the naive loop shares the policy: agreeing with it cannot catch this
        raise BenchError(f"{len(refused)} of {n} targets refused: the workload puts ~7% outside, so the check is wrong")
    compile_ms, compile_best = _timed_ms(compiled, repeats)
    recompile_ms, _ = _timed_ms(_recompiled(load), repeats)
    check_ms, check_best = _timed_ms(lambda: list(refusals(spec, load.targets, scope, checker)), repeats)
    naive_ms, sample = _naive_ms(load, refused, comparisons)
    return Row(n, compile_ms, recompile_ms, check_ms, check_best, compile_best + check_best, naive_ms, sample,
               len(refused))  # fmt: skip


def _recompiled(load: Workload) -> Callable[[], Scope]:
    """A worker's recompile after one entry was added: the stored entries' parsing kept (tasks.scope.store.Scopes)."""
    include = [str(e) for e in canonical(load.entries, max_prefix_v4=V4, max_prefix_v6=V6)]
    exclude = [str(e) for e in canonical(load.exclusions, max_prefix_v4=V4, max_prefix_v6=V6)]
    memo: dict[tuple[str, bool], Entry | ScopeEntryError] = {}
    for text in include:
        memoised(text, False, memo)
    for text in exclude:
        memoised(text, True, memo)
    added = iter(range(10**9))

    def recompile() -> Scope:
        texts = [*include, f"added{next(added)}.example.com"]  # a new entry each time: parsed once, the rest kept
        entries = [e for e in (memoised(t, False, memo) for t in texts) if isinstance(e, Entry)]
        return Scope.of(entries, [e for e in (memoised(t, True, memo) for t in exclude) if isinstance(e, Entry)])

    return recompile


def _timed_ms(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The median and the best of `repeats` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def _naive_ms(load: Workload, refused: set[str], comparisons: int) -> tuple[float, int]:
    """The naive loop's time for all targets (extrapolated past `comparisons` pairs) and the sample it ran on."""
    n = len(load.targets)
    gc.collect()
    start = time.perf_counter()
    scope = naive.compile_naive(load.entries, load.exclusions, v4=V4, v6=V6)
    found = naive.read(load.targets)
    canonicalise_ms = (time.perf_counter() - start) * 1000
    step = max(1, -(-n * n // comparisons))  # every step-th target: the sample keeps the workload's mix
    picked = list(range(0, n, step))
    gc.collect()
    start = time.perf_counter()
    allowed = [naive.allowed(scope, found[i]) for i in picked]
    loop_ms = (time.perf_counter() - start) * 1000
    _agree(load.targets, picked, allowed, refused)
    return canonicalise_ms + loop_ms * n / len(picked), len(picked)


def _agree(targets: Sequence[Target], picked: list[int], allowed: list[bool], refused: set[str]) -> None:
    """Raise BenchError unless the naive loop allows exactly the sampled targets the compiled check allows."""
    differ = [targets[i][1] for i, ok in zip(picked, allowed, strict=True) if ok == (targets[i][1] in refused)]
    if differ:
        raise BenchError(f"the naive loop and the compiled check disagree on {len(differ)} targets: {differ[:5]}")


def _print(rows: list[Row]) -> None:
    out = console(130)
    out.print(_results(rows))
    out.print(f"Python {platform.python_version()}, CPUs (usable by this process): {usable_cpus()}")
    at = next((row for row in rows if row.n == TARGET_N), None)
    if at is not None:
        out.print(_goals(at))


def _results(rows: list[Row]) -> Table:
    results = table(
        "Scope check: N targets against N entries (about N/50 of them exclusions), canonicalisation included",
        "N", "parse + compile ms", "recompile ms", "check ms", "compiled ms", "naive ms", "naive timed on",
        "naive / compiled",
    )  # fmt: skip
    for row in rows:
        total = row.compile_ms + row.check_ms
        how = "all targets" if row.sample == row.n else f"{row.sample} targets, extrapolated"
        results.add_row(
            f"{row.n:,}", f"{row.compile_ms:.1f}", f"{row.recompile_ms:.1f}", f"{row.check_ms:.1f}", f"{total:.1f}",
            f"{row.naive_ms:,.0f}", how, f"{row.naive_ms / total:,.0f}x",
        )  # fmt: skip
    refused = ", ".join(f"{row.refused:,} of {row.n:,}" for row in rows)
    results.caption = (
        f"medians; recompile: after one entry was added, the worker's parsed entries kept; targets refused (outside "
        f"or excluded, the same in both): {refused}"
    )
    return results


def _goals(at: Row) -> Table:
    total = at.compile_ms + at.check_ms
    goals = table(f"Targets at N = {TARGET_N:,}", "target", "measured", "")
    check = f"{at.check_ms:.1f} ms (best {at.check_best_ms:.1f})"
    goals.add_row(f"a run's check <= {TARGET_MS:.0f} ms (scope compiled)", check, verdict(at.check_ms <= TARGET_MS))
    measured = f"{total:.1f} ms (best {at.best_ms:.1f})"
    goals.add_row("the first check after a scope change (parse + compile + check)", measured, "no target")
    changed = f"{at.recompile_ms + at.check_ms:.1f} ms"
    goals.add_row("... when one entry changed (the worker's parsed entries kept)", changed, "no target")
    ratio = at.naive_ms / total
    goals.add_row(f"naive / compiled >= {TARGET_RATIO:.0f}x", f"{ratio:,.0f}x", verdict(ratio >= TARGET_RATIO))
    return goals


if __name__ == "__main__":
    main()
