"""The toolrunner CLI's argument handling (pure) and its one-line errors."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from tasks import app
from tasks.cli import UserError, cli, main, parse_params


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["targets=127.0.0.1", "ports=80,443"], {"targets": ["127.0.0.1"], "ports": "80,443"}),
        (["targets=a.example", "targets=b.example"], {"targets": ["a.example", "b.example"]}),
        (['targets=["x", "y"]', "top_ports=100"], {"targets": ["x", "y"], "top_ports": 100}),
        (["service_detection=true"], {"service_detection": True}),
        (["ports=80"], {"ports": 80}),
        (["targets=a=b"], {"targets": ["a=b"]}),
    ],
)
def test_params_become_lists_numbers_and_booleans_as_the_tool_expects(
    pairs: list[str], expected: dict[str, Any]
) -> None:
    assert parse_params(pairs, app.catalogue["nmap"]) == expected


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
