"""The README documents every setting, every command and every option (sqlite-utils' test_docs idea)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from memory.cli import main
from memory.config import Settings, env_name

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    assert re.search(rf"^\| `{env_name(field)}` \|", README, re.MULTILINE), f"{env_name(field)} is undocumented"


def test_the_readme_names_no_setting_that_does_not_exist() -> None:
    known = {env_name(field) for field in Settings.model_fields}
    named = set(re.findall(r"`(MEMORY_[A-Z_]+)`", README))
    assert named <= known, f"README documents unknown settings: {sorted(named - known)}"


COMMANDS = {
    f"{name} {sub}" if sub else name: command
    for name, group in main.commands.items()
    for sub, command in (group.commands.items() if isinstance(group, click.Group) else [("", group)])
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_is_documented(name: str) -> None:
    command = COMMANDS[name]
    row = re.search(rf"^\| `{name}( [A-Z]+)?` \|(.+)$", README, re.MULTILINE)
    assert row, f"`agent-memory {name}` has no row in the README's command table"
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "as_json":
            assert any(opt in row.group(2) for opt in param.opts), f"{name}: {param.opts} undocumented"
    if any(p.name == "as_json" for p in command.params):
        assert "takes `--json`" in README


def test_group_options_are_documented() -> None:
    for param in main.params:
        if isinstance(param, click.Option) and param.name not in ("version",):
            assert any(f"`{opt}" in README for opt in param.opts), f"{param.opts} undocumented"


def test_readme_quotes_the_two_commands_and_ci_runs_the_same_one() -> None:
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci
