"""The ``mpactors`` command's parsing and error reporting, in-process with click's CliRunner.

The API the commands call is patched out, so nothing here starts a node;
tests/test_cli.py runs the real command.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Any, Iterator, List, Tuple

import click
import pytest
from click.testing import CliRunner
from support import SHORT_TIMEOUT

import mpactors
from mpactors import config
from mpactors import cli as cli_module
from mpactors.cli._common import full_node_name, parse_args, short_host
from mpactors.cli import cli

HOST = short_host()

pytestmark = pytest.mark.timeout(30)


def all_commands(group: click.Group = cli, prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[str, ...]]:
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, epmd_port: int, mpactors_home: str) -> CliRunner:
    monkeypatch.setenv("MPACTORS_COOKIE", "parsing-test-cookie")
    return CliRunner()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> List[Tuple[Any, ...]]:
    """Patch out the hidden node and record the rpc calls the commands make."""
    seen: List[Tuple[Any, ...]] = []

    @contextlib.contextmanager
    def no_node(cookie: Any) -> Iterator[None]:
        seen.append(("hidden_node", cookie))
        yield

    def fake_call(node: str, fn: Any, *args: Any, timeout: Any = None, **kwargs: Any) -> Any:
        seen.append(("call", node, fn) + args)
        if fn == "mpactors.primitives:whereis":
            return None if args[0] == "nobody" else mpactors.Pid(node, 3, 0, 7)
        if fn == "boom:fail":
            raise mpactors.RemoteError("ValueError: bad (in boom:fail on x)", "ValueError", "Traceback...\nline 2\n")
        return ["result", *args]

    monkeypatch.setattr(cli_module, "hidden_node", no_node)
    monkeypatch.setattr(cli_module, "check_reachable", lambda node: seen.append(("check", node)))
    monkeypatch.setattr(cli_module.primitives, "send", lambda dest, msg: seen.append(("send", dest, msg)))
    monkeypatch.setattr(mpactors.rpc, "call", fake_call)
    return seen


@pytest.mark.parametrize("command", list(all_commands()), ids=lambda c: " ".join(c) or "mpactors")
def test_every_command_has_help_with_an_example(runner: CliRunner, command: Tuple[str, ...]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: mpactors" in result.output or "Example: echo" in result.output


def test_a_node_name_without_a_host_gets_the_short_hostname() -> None:
    assert full_node_name("a") == f"a@{HOST}"
    assert full_node_name("a@other.example.com") == "a@other.example.com"
    with pytest.raises(mpactors.BadArg):
        full_node_name("@host")


def test_arguments_are_python_literals_when_they_parse_else_strings() -> None:
    assert parse_args(["1", "'x'", "x", "[1, 2]", "None", "a b"]) == [1, "x", "x", [1, 2], None, "a b"]


def test_rpc_calls_the_function_on_the_node_with_parsed_arguments(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["rpc", "a", "os:getpid", "1", "x", "(2, 3)", "--cookie", "c1"])
    assert result.exit_code == 0, result.output
    assert result.output == "['result', 1, 'x', (2, 3)]\n"
    assert ("hidden_node", "c1") in calls
    assert ("call", f"a@{HOST}", "os:getpid", 1, "x", (2, 3)) in calls


def test_a_remote_exception_is_one_error_line_without_the_traceback(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["rpc", "a", "boom:fail"])
    assert result.exit_code == 1
    assert result.output == "Error: ValueError: bad (in boom:fail on x)\n"


def test_a_function_without_a_module_is_a_usage_error(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["rpc", "a", "getpid"])
    assert result.exit_code == 2
    assert "expected MODULE:FUNCTION" in result.output


def test_send_to_a_registered_name_goes_to_name_at_node(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["send", "a", "counter", "('add', 5)"])
    assert result.exit_code == 0, result.output
    assert ("send", ("counter", f"a@{HOST}"), ("add", 5)) in calls


def test_send_of_a_message_that_is_not_a_literal_fails_before_connecting(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["send", "a", "counter", "add 5"])
    assert result.exit_code == 1
    assert result.output == "Error: not a Python literal: 'add 5' (quote strings: \"'hello'\")\n"
    assert calls == []


def test_send_to_an_unregistered_name_is_an_error(runner: CliRunner, calls: list) -> None:
    result = runner.invoke(cli, ["send", "a", "nobody", "1"])
    assert result.exit_code == 1
    assert result.output == f"Error: no process is registered as 'nobody' on a@{HOST}\n"


def test_ping_answers_pang_without_starting_anything_when_no_port_mapper_runs(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["ping", "nobody"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [  # pang, and why (stderr)
        "pang", f"cannot connect to nobody@{HOST}: unknown name: node nobody@{HOST} is not running "
        f"(not registered with the port mapper on port {config.epmd_port()}); running here: none",
    ]


def test_an_invalid_node_name_fails_with_one_line(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["start", "not valid!", "--detached"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid node name 'not valid!'") and result.output.count("\n") == 1


def test_ps_with_no_port_mapper_says_so_in_one_line(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["ps"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no node is running on this host (no port mapper at 127.0.0.1:")
    assert result.output.count("\n") == 1


def test_logs_prints_the_log_of_a_short_or_full_node_name(runner: CliRunner, mpactors_home: str) -> None:
    from mpactors import config

    config.log_dir().mkdir(parents=True)
    (config.log_dir() / "a.log").write_text("line 1\nline 2\n")
    assert runner.invoke(cli, ["logs", "a"]).output == "line 1\nline 2\n"
    assert runner.invoke(cli, ["logs", f"a@{HOST}"]).output == "line 1\nline 2\n"
    missing = runner.invoke(cli, ["logs", "b"])
    assert missing.exit_code == 1 and missing.output.startswith(f"Error: no log for b@{HOST} at ")


def test_python_dash_m_mpactors_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mpactors", "--version"], capture_output=True, text=True, timeout=SHORT_TIMEOUT * 4,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == f"mpactors, version {mpactors.__version__}\n"
