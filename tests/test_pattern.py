"""Selective-receive patterns: ANY, types, tuples, values and predicates.

Pure matching (``mpactors.pattern``), no node; ``test_mailbox.py`` checks the
same patterns through ``receive``.
"""
from __future__ import annotations

import collections
import copy
import pickle
from typing import Any

import pytest

import mpactors
from mpactors import ANY, Down, ExitSignal, Pid, Ref
from mpactors.pattern import compile_pattern, matches

Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("msg", [0, None, "text", b"", (), (1, 2), [1], {"a": 1}, Pid("a@h", 1), object()])
def test_any_and_none_match_every_message(msg: Any) -> None:
    assert matches(ANY, msg)
    assert matches(None, msg)


def test_any_is_exported_and_keeps_its_identity_through_pickle_and_copy() -> None:
    assert mpactors.ANY is ANY
    assert pickle.loads(pickle.dumps(ANY)) is ANY
    assert copy.deepcopy(ANY) is ANY
    assert repr(ANY) == "ANY"


@pytest.mark.parametrize(
    "pattern, msg, expected",
    [
        (int, 3, True),
        (int, "3", False),
        (str, "3", True),
        (bytes, "3", False),
        (tuple, (1, 2), True),
        (tuple, Point(1, 2), True),
        (dict, {}, True),
        (Down, Down(Ref("a@h", 1, 1), Pid("a@h", 1), "normal"), True),
        (Down, ExitSignal(Pid("a@h", 1), "normal"), False),
        (ExitSignal, ExitSignal(Pid("a@h", 1), "normal"), True),
    ],
)
def test_a_type_matches_its_instances_only(pattern: type, msg: Any, expected: bool) -> None:
    assert matches(pattern, msg) is expected


@pytest.mark.parametrize(
    "pattern, msg, expected",
    [
        (42, 42, True),
        (42, 43, False),
        ("ping", "ping", True),
        ("ping", "pong", False),
        ("ping", b"ping", False),
        (b"x", b"x", True),
        ([1, 2], [1, 2], True),
        ([1, 2], (1, 2), False),
        ({"k": 1}, {"k": 1}, True),
        (Pid("a@h", 1, 0, 5), Pid("a@h", 1, 0, 5), True),
        (Pid("a@h", 1, 0, 5), Pid("a@h", 2, 0, 5), False),
    ],
)
def test_a_value_matches_an_equal_message(pattern: Any, msg: Any, expected: bool) -> None:
    assert matches(pattern, msg) is expected


@pytest.mark.parametrize("pattern, msg", [(True, 1), (1, True), (False, 0), (0, False)])
def test_a_boolean_never_matches_an_integer_or_the_reverse(pattern: Any, msg: Any) -> None:
    assert not matches(pattern, msg)


@pytest.mark.parametrize(
    "pattern, msg, expected",
    [
        (("ok", ANY), ("ok", 1), True),
        (("ok", ANY), ("error", 1), False),
        (("ok", ANY), ("ok", 1, 2), False),
        (("ok", ANY), ("ok",), False),
        (("ok", ANY), ["ok", 1], False),
        (("ok", ANY), "ok", False),
        (("ok", int), ("ok", 1), True),
        (("ok", int), ("ok", "1"), False),
        (("ok", (int, ANY)), ("ok", (1, "x")), True),
        (("ok", (int, ANY)), ("ok", (1, "x", 3)), False),
        (("ok", (int, ANY)), ("ok", ("1", "x")), False),
        ((), (), True),
        ((), (1,), False),
        ((ANY, ANY), Point(1, 2), True),
        ((1, lambda y: y > 1), Point(1, 2), True),
        ((1, lambda y: y > 1), Point(1, 0), False),
    ],
)
def test_a_tuple_pattern_matches_item_by_item_and_needs_the_same_length(pattern: Any, msg: Any, expected: bool) -> None:
    assert matches(pattern, msg) is expected


def test_a_tuple_pattern_does_not_match_runtime_messages() -> None:
    down = Down(Ref("a@h", 1, 1), Pid("a@h", 1), "normal")
    assert not matches((ANY, ANY, ANY), down)
    assert not matches((ANY, ANY), ExitSignal(Pid("a@h", 1), "normal"))


@pytest.mark.parametrize(
    "pattern, msg, expected",
    [
        (lambda m: isinstance(m, int) and m > 10, 11, True),
        (lambda m: isinstance(m, int) and m > 10, 10, False),
        (lambda m: m, 0, False),
        (lambda m: m, "truthy", True),
        (lambda m: [1], 0, True),
        (callable, len, True),
        (callable, 1, False),
    ],
)
def test_a_predicate_matches_when_it_returns_a_true_value(pattern: Any, msg: Any, expected: bool) -> None:
    assert matches(pattern, msg) is expected


def test_a_predicate_returns_a_real_bool_from_the_compiled_pattern() -> None:
    pred = compile_pattern(lambda m: m)
    assert pred("x") is True
    assert pred("") is False


def test_a_predicate_that_raises_propagates_its_error() -> None:
    def boom(msg: Any) -> bool:
        raise ValueError("pattern bug")

    with pytest.raises(ValueError, match="pattern bug"):
        matches(boom, 1)


def test_compile_pattern_gives_a_reusable_predicate() -> None:
    pred = compile_pattern(("reply", int, ANY))
    msgs = [("reply", 1, "a"), ("reply", "1", "a"), ("other", 1, "a"), ("reply", 2, None)]
    assert [m for m in msgs if pred(m)] == [("reply", 1, "a"), ("reply", 2, None)]
