"""Message serialization (``mpactors._codec``): pickle first, dill as fallback,
``BadArg`` for what neither can serialize; and every mpactors error pickles.

Pure value tests: no node, no processes.
"""
from __future__ import annotations

import pickle
import socket
from typing import Any, Callable

import pytest

from mpactors import BadArg, Crash, Down, ExitSignal, Pid, Ref, _codec
from mpactors.errors import (
    CookieError,
    EpmdError,
    MpactorsError,
    NodeError,
    NotAlive,
    ProcessExit,
    RemoteError,
    Timeout,
)


class CantPickle:
    """A fault object: refuses to be pickled (by pickle and by dill)."""

    def __reduce__(self) -> Any:
        raise TypeError("CantPickle refuses to be pickled")


def _explode() -> None:
    raise RuntimeError("CrashAtUnpickle cannot be loaded")


class CrashAtUnpickle:
    """A fault object: pickles fine, raises when loaded."""

    def __reduce__(self) -> Any:
        return (_explode, ())


PLAIN_VALUES = [
    None,
    True,
    0,
    -(2**100),
    1.5,
    "text é",
    b"\x00\xff",
    (1, (2, 3)),
    [1, [2]],
    {"a": {1, 2}},
    frozenset({1}),
    Pid("a@h", 1, 0, 3),
    Ref("a@h", 3, 99),
    Down(Ref("a@h", 3, 99), Pid("a@h", 1), "normal"),
    bytes(range(256)) * 1000,
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_round_trip(value: Any) -> None:
    assert _codec.loads(_codec.dumps(value)) == value


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=lambda v: type(v).__name__)
def test_values_pickle_can_handle_are_written_by_plain_pickle(value: Any) -> None:
    # pickle is much faster than dill: it must be tried first.
    assert _codec.dumps(value) == pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def test_a_lambda_round_trips_through_dill() -> None:
    fn = _codec.loads(_codec.dumps(lambda x: x * 3))
    assert fn(5) == 15


def test_a_closure_round_trips_with_its_captured_values() -> None:
    def make_adder(n: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return x + n

        return add

    add = _codec.loads(_codec.dumps(make_adder(10)))
    assert add(5) == 15


def test_a_local_class_instance_round_trips_through_dill() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    back = _codec.loads(_codec.dumps(Local(7)))
    assert back.v == 7


def test_a_message_holding_a_lambda_round_trips() -> None:
    msg = ("call", lambda: "answer", 3)
    tag, fn, n = _codec.loads(_codec.dumps(msg))
    assert (tag, fn(), n) == ("call", "answer", 3)


def test_a_value_nothing_can_pickle_raises_bad_arg_naming_its_type() -> None:
    with pytest.raises(BadArg, match=r"CantPickle"):
        _codec.dumps(CantPickle())


def test_a_generator_raises_bad_arg_naming_the_type() -> None:
    gen = (i for i in range(3))
    with pytest.raises(BadArg, match=r"generator"):
        _codec.dumps(gen)


def test_a_socket_raises_bad_arg_naming_the_type() -> None:
    with socket.socket() as s:
        with pytest.raises(BadArg, match=r"socket"):
            _codec.dumps(s)


def test_an_unpicklable_value_nested_in_a_container_raises_bad_arg() -> None:
    with pytest.raises(BadArg) as info:
        _codec.dumps({"key": [1, (2, CantPickle())]})
    assert "dict" in str(info.value)
    assert "CantPickle" in str(info.value)


def test_bad_arg_from_dumps_is_a_value_error_and_shortens_huge_reprs() -> None:
    with pytest.raises(ValueError) as info:
        _codec.dumps([CantPickle()] * 10_000)
    assert isinstance(info.value, BadArg)
    assert len(str(info.value)) < 500


def test_a_value_whose_repr_raises_still_gets_a_bad_arg() -> None:
    class BadRepr(CantPickle):
        def __repr__(self) -> str:
            raise RuntimeError("repr failed")

    with pytest.raises(BadArg, match="BadRepr"):
        _codec.dumps(BadRepr())


def test_loads_raises_when_the_bytes_cannot_be_loaded() -> None:
    data = _codec.dumps(CrashAtUnpickle())
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        _codec.loads(data)
    with pytest.raises(pickle.UnpicklingError):
        _codec.loads(b"\x80\x05garbage")


def test_max_message_is_a_positive_byte_count() -> None:
    assert isinstance(_codec.MAX_MESSAGE, int) and _codec.MAX_MESSAGE >= 1 << 20


ERRORS = [
    MpactorsError("root"),
    BadArg("bad"),
    Timeout("late"),
    RemoteError("remote failed", "ZeroDivisionError", "Traceback ...\nZeroDivisionError"),
    CookieError("cookie"),
    EpmdError("epmd"),
    NodeError("node"),
    NotAlive("not alive"),
    ProcessExit(Crash("ValueError", "v", "tb")),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_mpactors_error_survives_pickle_with_its_message(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert isinstance(back, MpactorsError)


def test_remote_error_keeps_the_remote_type_and_traceback_text_through_pickle() -> None:
    back = pickle.loads(pickle.dumps(ERRORS[3]))
    assert back.type_name == "ZeroDivisionError"
    assert back.remote_traceback.endswith("ZeroDivisionError")
    assert "Remote traceback" in str(back)


def test_process_exit_keeps_its_reason_through_pickle() -> None:
    back = pickle.loads(pickle.dumps(ProcessExit(ExitSignal(Pid("a@h", 1), "boom"))))
    assert back.reason == ExitSignal(Pid("a@h", 1), "boom")


def test_errors_subclass_the_builtin_error_a_user_would_catch() -> None:
    assert issubclass(BadArg, ValueError)
    assert issubclass(Timeout, TimeoutError)
    assert issubclass(NotAlive, NodeError)
