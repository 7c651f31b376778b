"""Every `wabot …` command in the README and the guides is one the CLI takes: the subcommand
exists (its `--help` succeeds) and every flag named is one of its options. The README's
install-and-test command is the one `.ci/run` runs."""

from __future__ import annotations

import re
import shlex
from functools import cache
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app
from tests.docs.markdown import ROOT, pages

SHELL = ("sh", "bash", "console", "shell")
SEPARATORS = re.compile(r"\s(?:&&|\|\||;|\|)\s")


def commands_in_blocks() -> list[tuple[str, list[str]]]:
    """(page, argv after `wabot`) for each command of each fenced shell block."""
    found = []
    for p in pages():
        for block in p.blocks(*SHELL):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                for part in SEPARATORS.split(line):
                    argv = wabot_argv(part)
                    if argv is not None:
                        found.append((p.name, argv))
    return found


def commands_inline() -> list[tuple[str, list[str]]]:
    """The same for inline code that starts with `wabot `: `[…]` optional parts and
    `a|b` alternatives are read as written, placeholders as positional arguments."""
    found = []
    for p in pages():
        for code in p.inline_code():
            if code.startswith("wabot "):
                text = code.replace("\\|", "|").replace("[", " ").replace("]", " ")
                argv = wabot_argv(text.replace("…", ""))
                if argv is not None:
                    found.append((p.name, argv))
    return found


def wabot_argv(command: str) -> list[str] | None:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    # A=b wabot …, sudo -u wabot env A=b /opt/wabot/venv/bin/wabot …
    while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] in ("sudo", "env")
                     or words[0].startswith("-")):
        words = words[2:] if words[0] == "-u" else words[1:]  # -u names a user
    if len(words) < 2 or words[0].rsplit("/", 1)[-1] != "wabot":
        return None
    return words[1:]


@cache
def root() -> Any:
    """The CLI as a command tree (Typer's own click: groups have `commands`)."""
    return typer.main.get_command(app)


def resolve(argv: list[str]) -> tuple[list[str], list[Any], list[str]]:
    """(subcommand path, the commands along it, the flags named)."""
    path, chain, command = [], [root()], root()
    flags = []
    for word in argv:
        if word.startswith("-") and len(word) > 1:
            flags.append(word.split("=", 1)[0])
        elif word in getattr(command, "commands", {}) and not flags:
            command = command.commands[word]
            path.append(word)
            chain.append(command)
    return path, chain, flags


def options(chain: list[Any]) -> set[str]:
    names = {"--help"}
    for command in chain:
        for param in command.params:
            names.update(getattr(param, "opts", []))
            names.update(getattr(param, "secondary_opts", []))
    return names


@cache
def help_works(path: tuple[str, ...]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*path, "--help"])
    return result.exit_code, result.output


ALL = commands_in_blocks() + commands_inline()


def test_the_guides_have_commands_to_check() -> None:
    assert len(commands_in_blocks()) >= 15 and len(commands_inline()) >= 30


@pytest.mark.parametrize(("where", "argv"), ALL, ids=[" ".join(a)[:60] for _, a in ALL])
def test_a_documented_command_parses_against_the_cli(where: str, argv: list[str]) -> None:
    path, chain, flags = resolve(argv)
    assert path, f"{where}: `wabot {' '.join(argv)}` names no subcommand of wabot"
    leaf = chain[-1]
    assert not hasattr(leaf, "commands") or argv[len(path):] == [] or flags, (
        f"{where}: `wabot {' '.join(argv)}`: {' '.join(path)} needs one of "
        f"{sorted(leaf.commands)}")
    code, output = help_works(tuple(path))
    assert code == 0, f"{where}: `wabot {' '.join(path)} --help` failed:\n{output}"
    known = options(chain)
    unknown = [f for f in flags if f not in known and not re.fullmatch(r"-v+", f)]
    assert not unknown, (f"{where}: `wabot {' '.join(argv)}`: {' '.join(path)} has no "
                         f"option {', '.join(unknown)} (it has {', '.join(sorted(known))})")


def normalized(step: str) -> str:
    step = re.sub(r"\bpython3\b", "python", step.strip())
    step = step.replace("python -m pip ", "pip ").replace(" --quiet", "")
    return " ".join(step.split())


def test_the_readmes_test_command_is_what_ci_runs() -> None:
    readme = next(p for p in pages() if p.name == "README.md")
    blocks = [b for b in readme.blocks(*SHELL) if "pytest" in b]
    assert len(blocks) == 1, "the README has one install-and-test command"
    steps = [normalized(s) for s in blocks[0].strip().split("&&")]
    ci = [normalized(line) for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    at = 0
    for step in steps:
        assert step in ci[at:], f"the README's step `{step}` is not run by .ci/run (in order)"
        at = ci.index(step, at) + 1


def test_the_readmes_run_command_installs_what_it_runs() -> None:
    readme = next(p for p in pages() if p.name == "README.md")
    first = readme.blocks(*SHELL)[0].split()
    assert "install" in first and "." in first and "wabot" in first and "run" in first
