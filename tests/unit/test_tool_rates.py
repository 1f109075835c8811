"""Request rates: each tool's rate flag, with_rate's lowering and flooring, and ffuf 1.1's threads and delay."""

from __future__ import annotations

import math
import types
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from tasks.tools import (
    ToolParams,
    ToolSpec,
    dnsx,
    ffuf,
    gobuster,
    httpx,
    load_catalogue,
    naabu,
    nmap,
    nuclei,
    sqlmap,
    sslscan,
    subfinder,
    wafw00f,
    whatweb,
)
from tasks.tools.rates import with_rate

CATALOGUE = load_catalogue()
# tool: (params without a rate, the rate param's value, the argv that carries it)
TOOLS: dict[str, tuple[dict[str, Any], float, list[str]]] = {
    "nmap": ({"targets": ["192.0.2.1"]}, 2.5, ["--max-rate", "2.5"]),
    "naabu": ({"hosts": ["192.0.2.1"]}, 300, ["-rate", "300"]),
    "httpx": ({"targets": ["example.com"]}, 20, ["-rl", "20"]),
    "nuclei": ({"targets": ["example.com"]}, 20, ["-rl", "20"]),
    "dnsx": ({"domains": ["example.com"]}, 100, ["-rl", "100"]),
    "ffuf": ({"url": "https://example.com/FUZZ", "wordlist": ["a"]}, 50, ["-t", "25", "-p", "0.5005"]),
    "whatweb": ({"targets": ["https://example.com"]}, 20, ["--max-threads", "20", "--wait=1"]),
    "sslscan": ({"targets": ["example.com"]}, 20, ["--sleep=50"]),
    "gobuster": ({"url": "https://example.com/", "wordlist": ["a"]}, 50, ["-t", "10", "--delay", "200ms"]),
    "sqlmap": ({"targets": ["https://example.com/?id=1"]}, 3, ["--delay=0.334"]),
}
MODULES: dict[str, types.ModuleType] = {
    "nmap": nmap, "naabu": naabu, "httpx": httpx, "nuclei": nuclei, "dnsx": dnsx, "ffuf": ffuf,
    "whatweb": whatweb, "sslscan": sslscan, "gobuster": gobuster, "sqlmap": sqlmap,
}  # fmt: skip


def params(tool: str, **extra: Any) -> ToolParams:
    return CATALOGUE[tool].params_model.model_validate({**TOOLS[tool][0], **extra})


def argv(tool: str, value: ToolParams) -> list[str]:
    return MODULES[tool].build(value).argv  # type: ignore[no-any-return]


def contains(sequence: list[str], part: list[str]) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence)))


# Each tool's option.


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_rate_adds_the_tools_own_flag(tool: str) -> None:
    spec = CATALOGUE[tool]
    assert spec.rate_param is not None
    assert contains(argv(tool, params(tool, **{spec.rate_param: TOOLS[tool][1]})), TOOLS[tool][2])


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_without_a_rate_no_rate_flag_is_passed(tool: str) -> None:
    flags = {"--max-rate", "-rate", "-rl"} | (
        {"-t", "-p", "--delay"} if tool in ("ffuf", "gobuster") else set()
    )  # nuclei's -t: templates
    args = argv(tool, params(tool))
    assert flags.isdisjoint(args) and not any(
        arg.startswith(("--max-threads", "--wait", "--sleep", "--delay")) for arg in args
    )


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("value", [0, -1, 100_001, "fast", "-rl"])
def test_a_rate_outside_its_bounds_or_not_a_number_is_refused(tool: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        params(tool, **{CATALOGUE[tool].rate_param or "": value})


def test_every_tool_but_subfinder_and_wafw00f_names_its_rate_param() -> None:
    assert {name for name, spec in CATALOGUE.items() if spec.rate_param is not None} == set(TOOLS)


def test_nmap_passes_a_fractional_rate_as_it_is_since_it_reads_a_float() -> None:
    assert contains(argv("nmap", params("nmap", max_rate=0.5)), ["--max-rate", "0.5"])


def test_wafw00f_cannot_be_told_a_rate_since_it_has_no_option_to_pause_or_slow_down() -> None:
    assert wafw00f.SPEC.rate_param is None
    assert not any("rate" in name or "delay" in name for name in wafw00f.Wafw00fParams.model_fields)


def test_subfinder_cannot_be_told_a_rate_since_it_never_contacts_the_domains() -> None:
    assert subfinder.SPEC.rate_param is None
    assert "rate" not in " ".join(subfinder.SubfinderParams.model_fields)


def test_every_rate_param_is_a_field_whose_kind_matches_rate_integer() -> None:
    for spec in CATALOGUE.values():
        if spec.rate_param is not None:
            kinds = get_args(spec.params_model.model_fields[spec.rate_param].annotation)
            assert kinds == ((int, type(None)) if spec.rate_integer else (float, type(None))), spec.name
            assert spec.params_model.model_fields[spec.rate_param].description, spec.name


def test_a_spec_naming_a_rate_param_its_params_lack_is_refused() -> None:
    with pytest.raises(ValueError, match="no field"):
        ToolSpec(
            name="x", image="x", entrypoint=["x"], params_model=naabu.NaabuParams, build=naabu.build,
            parse=naabu.parse, rate_param="max_rate",
        )  # fmt: skip


# with_rate.


@pytest.mark.parametrize(("asked", "granted", "expected"), [(None, 50, 50), (20, 50, 20), (80, 50, 50)])
def test_with_rate_takes_the_lower_of_the_requests_rate_and_the_grant(
    asked: int | None, granted: float, expected: int
) -> None:
    result = with_rate(naabu.SPEC, params("naabu", rate=asked), granted)
    assert isinstance(result, naabu.NaabuParams)
    assert result.rate == expected


@pytest.mark.parametrize(("granted", "expected"), [(49.9, 49), (1.5, 1), (0.3, 1), (1e-9, 1)])
def test_with_rate_floors_a_grant_for_an_integer_tool_but_never_below_one(granted: float, expected: int) -> None:
    result = with_rate(httpx.SPEC, params("httpx"), granted)
    assert isinstance(result, httpx.HttpxParams)
    assert result.rate_limit == expected
    assert type(result.rate_limit) is int
    assert contains(httpx.build(result).argv, ["-rl", str(expected)])


def test_with_rate_keeps_a_fraction_for_a_tool_that_takes_decimals() -> None:
    result = with_rate(nmap.SPEC, params("nmap", max_rate=10), 2.5)
    assert isinstance(result, nmap.NmapParams)
    assert result.max_rate == 2.5
    assert contains(nmap.build(result).argv, ["--max-rate", "2.5"])


def test_with_rate_returns_params_unchanged_when_the_tool_cannot_be_told_a_rate() -> None:
    value = subfinder.SubfinderParams(domains=("example.com",))
    assert with_rate(subfinder.SPEC, value, 5) is value


def test_with_rate_leaves_the_requests_params_as_they_were() -> None:
    value = params("dnsx", rate_limit=500)
    assert isinstance(with_rate(dnsx.SPEC, value, 10), dnsx.DnsxParams)
    assert value.rate_limit == 500  # type: ignore[attr-defined]


@pytest.mark.parametrize("granted", [0, -1, math.nan, math.inf])
def test_with_rate_refuses_a_grant_that_is_not_a_positive_number(granted: float) -> None:
    with pytest.raises(ValueError, match="granted rate"):
        with_rate(naabu.SPEC, params("naabu"), granted)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_gets_the_grant_floored_only_if_it_takes_whole_numbers(tool: str) -> None:
    result = with_rate(CATALOGUE[tool], params(tool), 7.5)
    assert getattr(result, CATALOGUE[tool].rate_param or "") == (7 if CATALOGUE[tool].rate_integer else 7.5)


# ffuf 1.1: threads and a delay.


def go_delay_ms(flag: str) -> int:
    """The milliseconds ffuf 1.1 sleeps for -p: time.Duration(seconds * 1000) truncates toward zero."""
    return int(float(flag) * 1000)


@pytest.mark.parametrize("rate", [0.001, 0.5, 1, 1.5, 2.5, 7, 25, 41, 50, 99.9, 1000, 4321.5, 100_000])
@pytest.mark.parametrize("threads", [None, 1, 3, 40, 100])
def test_ffufs_threads_and_delay_never_start_more_requests_than_the_rate(rate: float, threads: int | None) -> None:
    args = argv("ffuf", params("ffuf", rate=rate, threads=threads))
    t, delay = int(args[args.index("-t") + 1]), go_delay_ms(args[args.index("-p") + 1])
    assert 1 <= t <= (threads or 40)
    assert t * 1000 / delay <= rate  # the mean: each slot starts once per delay plus response time
    if rate >= 1:  # any one second: a slot's starts are more than delay apart
        assert t * math.ceil(1000 / delay) <= rate


@pytest.mark.parametrize(
    ("rate", "threads", "expected"),
    [(50, None, ["-t", "25", "-p", "0.5005"]), (20, None, ["-t", "20", "-p", "1.0005"]),
     (0.5, 10, ["-t", "1", "-p", "2.0005"]), (1000, None, ["-t", "40", "-p", "0.0405"]),
     (2.5, None, ["-t", "2", "-p", "1.0005"]), (20, 5, ["-t", "5", "-p", "0.2505"])],
)  # fmt: skip
def test_ffufs_pace_for_common_rates(rate: float, threads: int | None, expected: list[str]) -> None:
    assert ffuf.pace(rate, threads).argv() == expected


@pytest.mark.parametrize("delay_ms", [1, 40, 333, 1001, 1003, 2000, 123_457])
def test_ffufs_delay_flag_survives_the_truncation_to_whole_milliseconds(delay_ms: int) -> None:
    assert go_delay_ms(ffuf.Pace(threads=1, delay_ms=delay_ms).argv()[3]) == delay_ms


def test_ffuf_without_a_rate_passes_the_requested_threads_alone() -> None:
    args = argv("ffuf", params("ffuf", threads=5))
    assert contains(args, ["-t", "5"])
    assert "-p" not in args
