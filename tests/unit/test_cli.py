"""The toolrunner CLI's argument handling (pure) and its one-line errors."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from config import Settings
from tasks import app
from tasks.cli import cli, main
from tasks.cli.run import _local_scope, parse_params, print_result
from tasks.errors import UserError
from tasks.service import RunRequest, plan_run
from tasks.service.plan import unleased

FFUF = ["url=http://127.0.0.1/FUZZ", "wordlist=admin"]
FFUF_PARAMS = {"url": "http://127.0.0.1/FUZZ", "wordlist": ["admin"]}


@pytest.mark.parametrize(
    ("tool", "pairs", "expected"),
    [
        ("nmap", ["targets=127.0.0.1", "ports=80,443"], {"targets": ["127.0.0.1"], "ports": "80,443"}),
        ("nmap", ["targets=a.example", "targets=b.example"], {"targets": ["a.example", "b.example"]}),
        ("nmap", ['targets=["x", "y"]', "top_ports=100"], {"targets": ["x", "y"], "top_ports": 100}),
        ("nmap", ["targets=x", "service_detection=true"], {"targets": ["x"], "service_detection": True}),
        ("nmap", ["targets=x", "service_detection=false"], {"targets": ["x"], "service_detection": False}),
        ("nmap", ["targets=127.0.0.1", "ports=80"], {"targets": ["127.0.0.1"], "ports": "80"}),
        ("nmap", ["targets=127.0.0.1", "ports=6379"], {"targets": ["127.0.0.1"], "ports": "6379"}),
        ("ffuf", [*FFUF, "threads=5"], {**FFUF_PARAMS, "threads": 5}),
        ("ffuf", [*FFUF, "match_codes=200"], {**FFUF_PARAMS, "match_codes": [200]}),
        (
            "ffuf",
            [*FFUF, "match_codes=200", "match_codes=301"],
            {**FFUF_PARAMS, "match_codes": [200, 301]},
        ),
    ],
)
def test_each_value_is_converted_by_the_field_it_fills(tool: str, pairs: list[str], expected: dict[str, Any]) -> None:
    spec = app.catalogue[tool]
    params = parse_params(pairs, spec)
    assert spec.params_model.model_validate(params).model_dump(mode="json", exclude_unset=True) == expected


def test_a_string_field_keeps_the_text_as_typed() -> None:
    assert parse_params(["ports=80", "targets=a=b"], app.catalogue["nmap"]) == {"ports": "80", "targets": ["a=b"]}


def test_a_single_value_key_given_twice_is_a_user_error() -> None:
    with pytest.raises(UserError, match="given twice"):
        parse_params(["ports=80", "ports=81"], app.catalogue["nmap"])


@pytest.mark.parametrize("pair", ["novalue", "=x"])
def test_a_param_without_key_or_equals_sign_is_a_user_error(pair: str) -> None:
    with pytest.raises(UserError, match="key=value"):
        parse_params([pair], app.catalogue["nmap"])


def test_an_unknown_tool_exits_2_with_one_line_naming_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["toolrunner", "run", "nope", "--tenant", "acme"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: unknown tool 'nope'; known tools:" in err and "nmap" in err
    assert "Traceback" not in err


def test_invalid_params_exit_2_with_pydantics_message_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["toolrunner", "run", "nmap", "--tenant", "acme", "-p", "targets=-oX"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid params for nmap" in err and "Traceback" not in err


def test_the_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "tools", "volumes", "sweep"):
        assert command in result.output


def test_every_command_is_mounted_once_in_the_order_the_help_lists_them() -> None:
    root = typer.main.get_command(cli)
    commands = getattr(root, "commands", {})
    assert list(commands) == [
        "run", "tools", "volumes", "sweep", "cancel", "status", "result", "limits", "scope", "hosts", "cache",
        "artifacts", "webhooks", "audit",
    ]  # fmt: skip
    named = ("limits", "hosts", "cache", "artifacts", "webhooks", "audit")
    groups = {name: list(getattr(commands[name], "commands", {})) for name in named}
    assert groups == {
        "limits": ["set", "unset", "show"],
        "hosts": ["set", "unset", "show"],
        "cache": ["clear"],
        "artifacts": ["list", "get", "sweep", "purge"],
        "webhooks": ["set", "rotate", "unset", "show", "log", "redeliver"],
        "audit": ["verify", "search", "export"],
    }


def test_tool_controlled_text_is_printed_plainly_with_control_characters_made_visible(
    capsys: pytest.CaptureFixture[str],
) -> None:
    title = "\x1b]0;owned\x07[bold]pwned[/bold]\u202etxt.exe\x1b[2J"
    result = {
        "tool": "httpx", "tenant_id": "acme", "run_id": "r", "status": "ok", "exit_code": 0, "reason": None,
        "findings": [{"title": title}], "stats": {"duration_ms": 5},
    }  # fmt: skip
    print_result(result, app.catalogue["httpx"])
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed and "\x07" not in printed
    assert "\\x1b]0;owned\\x07[bold]pwned[/bold]\\u202etxt.exe\\x1b[2J" in printed.replace("\n", "").replace(
        "│", ""
    ).replace(" ", "")


@pytest.mark.parametrize(
    ("scope", "environment", "message"),
    [
        ([], {}, "in this process the tenant's scope is what --scope gives"),
        (["--scope", "127.0.0.1"], {}, "not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE"),
        (["--scope", "127.0.0.1"], {"TOOLRUNNER_SCOPE_ALLOW_PRIVATE": "127.0.0.0/8"}, "'127.0.0.2': outside"),
        (["--scope", "127.0.0.1"], {"TOOLRUNNER_BROKER_URL": "redis://127.0.0.1:1/0"}, "are for runs in this"),
        ([], {"TOOLRUNNER_SCOPE": "off"}, "not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE"),  # the policy holds with scope off
    ],
    ids=["no-scope", "loopback-not-allowed", "outside", "with-a-broker", "scope-off"],
)
def test_an_in_process_run_outside_its_scope_exits_2_before_any_engine_call(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    scope: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    for key in ("TOOLRUNNER_BROKER_URL", "TOOLRUNNER_SCOPE_ALLOW_PRIVATE", "TOOLRUNNER_SCOPE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("tasks.cli.run.isolation.connect", _no_engine)
    argv = ["toolrunner", "run", "nmap", "--tenant", "acme", "-p", "targets=127.0.0.2", *scope]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err


def _no_engine(*_: Any) -> None:
    raise AssertionError("a refused run must not reach the engine")


def test_an_in_process_run_reaching_a_host_is_told_the_default_share_of_a_host() -> None:
    settings = Settings(scope="off", scope_allow_private=("127.0.0.0/8",), tool_network="host")
    request = RunRequest("nmap", "acme", "r", {"targets": ["127.0.0.2"], "ports": "80"})
    plan = plan_run(app.catalogue, request, max_input_bytes=1 << 20, max_timeout_seconds=600)
    _, reached = _local_scope(settings, plan, [])
    told = unleased(plan, settings, bool(reached)).invocation.argv
    share = settings.host_max_rps / settings.host_max_running
    assert float(told[told.index("--max-rate") + 1]) == share
    assert unleased(plan, Settings(politeness="off"), bool(reached)) is plan
