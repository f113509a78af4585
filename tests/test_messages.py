"""Runtime message types: ExitSignal, Down, NodeUp, NodeDown and Crash.

They are frozen, comparable, hashable, picklable values, and not tuples (a
user's tuple pattern never catches them). Pure value tests.
"""
from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import mpactors
from mpactors import Crash, Down, ExitSignal, NodeDown, NodeUp, Pid, Ref

PID = Pid("a@host", 3, 0, 9)
REF = Ref("a@host", 9, 77)

SAMPLES = [
    ExitSignal(PID, "normal"),
    Down(REF, PID, "killed"),
    NodeUp("b@host"),
    NodeDown("b@host"),
    Crash("ZeroDivisionError", "division by zero", "Traceback (most recent call last):\n..."),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_runtime_messages_survive_pickle_equal_and_with_the_same_hash(msg: Any) -> None:
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(msg, proto))
        assert back == msg
        assert type(back) is type(msg)
        assert hash(back) == hash(msg)
    assert copy.deepcopy(msg) == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_runtime_messages_are_immutable(msg: Any) -> None:
    name = type(msg).__slots__[0]
    before = getattr(msg, name)
    with pytest.raises(AttributeError):
        setattr(msg, name, "changed")
    with pytest.raises(AttributeError):
        msg.other = 1
    assert getattr(msg, name) == before


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_runtime_messages_are_not_tuples(msg: Any) -> None:
    assert not isinstance(msg, tuple)


@pytest.mark.parametrize("cls", [ExitSignal, Down, NodeUp, NodeDown, Crash])
def test_constructing_with_the_wrong_number_of_fields_raises_type_error(cls: type) -> None:
    n = len(cls.__slots__)
    with pytest.raises(TypeError, match=cls.__name__):
        cls(*range(n + 1))
    with pytest.raises(TypeError, match=cls.__name__):
        cls(*range(n - 1))


def test_fields_are_reachable_by_name() -> None:
    down = Down(REF, PID, "noproc")
    assert (down.ref, down.pid, down.reason) == (REF, PID, "noproc")
    sig = ExitSignal(PID, "kill")
    assert (sig.pid, sig.reason) == (PID, "kill")
    assert NodeUp("b@h").node == "b@h"
    assert NodeDown("b@h").node == "b@h"
    crash = SAMPLES[4]
    assert crash.type == "ZeroDivisionError"
    assert crash.message == "division by zero"
    assert crash.traceback.startswith("Traceback")


def test_messages_of_different_types_with_the_same_fields_differ() -> None:
    assert NodeUp("b@h") != NodeDown("b@h")
    assert NodeUp("b@h") != ("b@h",)
    assert len({NodeUp("b@h"), NodeDown("b@h"), NodeUp("b@h")}) == 2


def test_messages_differing_in_a_field_differ() -> None:
    assert Down(REF, PID, "normal") != Down(REF, PID, "killed")
    assert ExitSignal(PID, "normal") != ExitSignal(Pid("a@host", 4, 0, 9), "normal")


def test_repr_names_the_type_and_every_field() -> None:
    text = repr(Down(REF, PID, "killed"))
    assert text.startswith("Down(")
    assert "ref=" in text and "pid=" in text and "reason='killed'" in text
    assert repr(NodeUp("b@h")) == "NodeUp(node='b@h')"


def test_crash_prints_as_type_and_message() -> None:
    assert str(Crash("ValueError", "bad value", "tb")) == "ValueError: bad value"
    assert str(Crash("KeyboardInterrupt", "", "tb")) == "KeyboardInterrupt"


def test_message_types_are_exported_from_the_package() -> None:
    for cls in (ExitSignal, Down, NodeUp, NodeDown, Crash):
        assert getattr(mpactors, cls.__name__) is cls
        assert cls.__name__ in mpactors.__all__
