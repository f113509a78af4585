"""Pid and Ref: frozen, hashable, picklable identities, and pid text parsing.

Pure value tests: no node, no processes.
"""
from __future__ import annotations

import copy
import pickle

import pytest

import mpactors
from mpactors import BadArg, Pid, Ref, parse_pid


def test_pids_with_the_same_fields_are_equal_and_hash_alike() -> None:
    a = Pid("a@host", 5, 0, 42)
    b = Pid("a@host", 5, 0, 42)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [
        Pid("b@host", 5, 0, 42),
        Pid("a@host", 6, 0, 42),
        Pid("a@host", 5, 1, 42),
        Pid("a@host", 5, 0, 43),
    ],
    ids=["node", "id", "serial", "creation"],
)
def test_pids_differing_in_any_field_are_different(other: Pid) -> None:
    assert Pid("a@host", 5, 0, 42) != other


def test_a_pid_of_an_earlier_incarnation_of_a_node_is_not_the_same_pid() -> None:
    # The creation is how a pid of a restarted node never matches a new process.
    old, new = Pid("a@host", 1, 0, creation=1), Pid("a@host", 1, 0, creation=2)
    assert old != new
    assert str(old) == str(new)


def test_a_pid_is_not_equal_to_its_text_or_a_tuple() -> None:
    pid = Pid("a@host", 5, 0, 42)
    assert pid != str(pid)
    assert pid != ("a@host", 5, 0, 42)


def test_a_pid_is_immutable() -> None:
    pid = Pid("a@host", 5)
    with pytest.raises(AttributeError):
        pid.id = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        pid.anything = 1  # type: ignore[attr-defined]
    assert pid.id == 5


def test_a_pid_survives_pickle_and_copy_with_every_field() -> None:
    pid = Pid("a@host", 5, 3, 42)
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(pid, proto))
        assert back == pid
        assert (back.node, back.id, back.serial, back.creation) == ("a@host", 5, 3, 42)
        assert hash(back) == hash(pid)
    assert copy.deepcopy(pid) == pid


def test_a_pid_prints_as_node_id_serial_in_angle_brackets() -> None:
    pid = Pid("a@host", 5, 0, 42)
    assert str(pid) == "<a@host.5.0>"
    assert repr(pid) == "Pid(<a@host.5.0>)"


def test_pids_sort_by_node_then_id() -> None:
    pids = [Pid("b@h", 1), Pid("a@h", 10), Pid("a@h", 2)]
    assert sorted(pids) == [Pid("a@h", 2), Pid("a@h", 10), Pid("b@h", 1)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<a@host.5.0>", Pid("a@host", 5, 0)),
        ("<nonode@nohost.0.0>", Pid("nonode@nohost", 0, 0)),
        ("  <a@host.example.com.17.3>\n", Pid("a@host.example.com", 17, 3)),
        ("<a@127.0.0.1.9.0>", Pid("a@127.0.0.1", 9, 0)),
    ],
)
def test_parse_pid_reads_the_text_form_back(text: str, expected: Pid) -> None:
    assert parse_pid(text) == expected


def test_parse_pid_round_trips_str_and_takes_the_creation_as_an_argument() -> None:
    pid = Pid("a@host", 123, 4, 99)
    assert parse_pid(str(pid), creation=99) == pid
    assert parse_pid(str(pid)).creation == 0


@pytest.mark.parametrize(
    "text",
    ["", "a@host.5.0", "<a@host.5>", "<a@host.x.0>", "<a@host.5.0", "<.5.0>", "<a host.5.0>", "pid"],
)
def test_parse_pid_rejects_text_that_is_not_a_pid_with_bad_arg(text: str) -> None:
    with pytest.raises(BadArg, match="not a pid"):
        parse_pid(text)


@pytest.mark.parametrize("value", [5, None, b"<a@host.5.0>"])
def test_parse_pid_rejects_a_value_that_is_not_text_with_bad_arg(value: object) -> None:
    with pytest.raises(BadArg):
        parse_pid(value)  # type: ignore[arg-type]


def test_refs_made_on_one_node_are_all_different() -> None:
    refs = [Ref.make("a@host", 7, 1234) for _ in range(1000)]
    assert len(set(refs)) == 1000
    assert all(r.node == "a@host" and r.creation == 7 for r in refs)


def test_refs_with_the_same_fields_are_equal_and_hash_alike() -> None:
    assert Ref("a@h", 1, 5) == Ref("a@h", 1, 5)
    assert hash(Ref("a@h", 1, 5)) == hash(Ref("a@h", 1, 5))
    assert Ref("a@h", 1, 5) != Ref("a@h", 2, 5)
    assert Ref("a@h", 1, 5) != Ref("b@h", 1, 5)
    assert Ref("a@h", 1, 5) != Ref("a@h", 1, 6)


def test_a_ref_is_immutable_and_survives_pickle() -> None:
    ref = Ref.make("a@host", 7, 1)
    with pytest.raises(AttributeError):
        ref.n = 0  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(ref))
    assert back == ref and hash(back) == hash(ref)
    assert "a@host" in repr(ref)


def test_make_ref_inside_a_node_gives_refs_of_that_node() -> None:
    with mpactors.Node():
        refs = {mpactors.make_ref() for _ in range(100)}
        assert len(refs) == 100
        assert {r.node for r in refs} == {mpactors.node()}
