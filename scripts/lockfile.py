"""The dependency locks in requirements/: read them, compare them with each other and with an environment.

    python scripts/lockfile.py check requirements/test.txt      exit 1 if this interpreter's environment
                                                                 differs from the lock (missing, extra,
                                                                 another version), naming each difference
    python scripts/lockfile.py diff OLD NEW                      what an update changes, one line a package
    python scripts/lockfile.py build-requirements pyproject.toml the build backend (and pip) to lock too

The locks are `uv pip compile --universal --generate-hashes` output (scripts/update-deps writes them), in
pip's requirements format: `name==version ; marker` with `--hash` continuation lines. Everything except
`check`'s reading of the installed distributions is pure, so tests/unit/test_lock.py runs it on made-up
environments.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Installed but not in a lock, by design: the project itself (installed from the checkout).
PROJECT = "toolrunner"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)\s*(?:;(?P<marker>.*))?$")


def canonical(name: str) -> str:
    """The PEP 503 form of a distribution name (`PyYAML`, `pyyaml` and `py_yaml` are one package)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    marker: str | None  # an environment marker, or None where the pin applies everywhere


def parse(text: str) -> list[Pin]:
    """The pins of a lock; a line that is neither a pin, an option, a comment nor blank is an error."""
    pins: list[Pin] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = re.split(r"\s+--", line, maxsplit=1)[0].strip()  # drop --hash=… options
        if requirement.startswith("--"):
            continue  # a global option (--index-url, …); -e, -r and -c lines are not pins

        match = _PIN.match(requirement)
        if match is None:
            raise ValueError(f"not an exact pin: {requirement!r} (a lock pins every package with ==)")
        marker = (match["marker"] or "").strip() or None
        pins.append(Pin(canonical(match["name"]), match["version"], marker))
    return pins


def expected(pins: Iterable[Pin], environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The packages and versions a lock puts into one environment (its markers evaluated there)."""
    from packaging.markers import Marker  # only here: the other commands run before any venv exists

    wanted: dict[str, str] = {}
    for pin in pins:
        if pin.marker is None or Marker(pin.marker).evaluate(dict(environment) if environment else None):
            wanted[pin.name] = pin.version
    return wanted


def differences(wanted: Mapping[str, str], installed: Mapping[str, str], *, allow_extra: bool = False) -> list[str]:
    """How `installed` (canonical name → version) differs from `wanted`, one sentence a package."""
    problems = [
        f"{name} {version} is in the lock but not installed"
        for name, version in wanted.items()
        if name not in installed
    ]
    problems += [
        f"{name} is {installed[name]}, the lock says {version}"
        for name, version in wanted.items()
        if name in installed and installed[name] != version
    ]
    if not allow_extra:
        problems += [
            f"{name} {version} is installed but not in the lock"
            for name, version in installed.items()
            if name not in wanted and name != PROJECT
        ]
    return sorted(problems)


def changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """What moving from lock `old` to lock `new` changes (name → version, markers ignored)."""
    both = sorted(old.keys() & new.keys())
    lines = [f"  {name} {old[name]} -> {new[name]}" for name in both if old[name] != new[name]]
    lines += [f"+ {name} {new[name]}" for name in sorted(new.keys() - old.keys())]
    lines += [f"- {name} {old[name]}" for name in sorted(old.keys() - new.keys())]
    return lines


def build_requirements(pyproject: str) -> list[str]:
    """pyproject's build-system.requires, plus pip: what a venv needs to install the project, locked too."""
    requires = tomllib.loads(pyproject).get("build-system", {}).get("requires", [])
    return [*requires, "pip"]


def installed_distributions() -> dict[str, str]:
    """This interpreter's distributions, canonical name → version."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonical(name)] = dist.version
    return found


def _versions(path: str) -> dict[str, str]:
    return {pin.name: pin.version for pin in parse(Path(path).read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="compare this environment with a lock")
    check.add_argument("lock")
    check.add_argument("--allow-extra", action="store_true", help="ignore packages the lock does not name")
    diff = commands.add_parser("diff", help="what changes between two locks")
    diff.add_argument("old")
    diff.add_argument("new")
    build = commands.add_parser("build-requirements", help="the build requirements to lock")
    build.add_argument("pyproject")
    args = parser.parse_args(argv)
    if args.command == "build-requirements":
        print("\n".join(build_requirements(Path(args.pyproject).read_text())))
        return 0
    if args.command == "diff":
        lines = changes(_versions(args.old), _versions(args.new))
        print("\n".join(lines) if lines else "no version changed")
        return 0
    problems = differences(
        expected(parse(Path(args.lock).read_text())), installed_distributions(), allow_extra=args.allow_extra
    )
    for problem in problems:
        print(f"{args.lock}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
