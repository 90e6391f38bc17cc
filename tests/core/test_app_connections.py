"""The web app's connection table: who makes room for a new connection, and when one is refused.

Pure bookkeeping (no sockets, no Gradio): connections are strings, the clock is a counter. The
sockets-level behaviour is tested in test_app_hostile.py.
"""

from __future__ import annotations

import itertools

from artalk_core.app.connections import ConnectionTable


def table(max_connections: int = 8, client_connections: int = 3, exempt: frozenset[str] = frozenset()) -> ConnectionTable:
    ticks = itertools.count()
    return ConnectionTable(max_connections=max_connections, client_connections=client_connections, exempt=exempt,
                           clock=lambda: float(next(ticks)))


def test_a_full_address_makes_room_by_closing_its_least_recently_heard_stalled_connection():
    t = table()
    for name in ("a1", "a2", "a3"):
        assert t.admit(name, "A") == (None, [])
    t.heard("a1")  # a1 sent a byte since: a2 is now the one heard from least recently
    assert t.admit("a4", "A") == (None, ["a2"])
    assert t.held["A"] == 3 and "a2" not in t.client_of
    t.leave("a2")  # its close comes later: nothing to count twice
    assert t.held["A"] == 3 and len(t) == 3


def test_served_connections_are_never_closed_for_a_newcomer_of_the_same_address():
    t = table()
    for name in ("a1", "a2", "a3"):
        t.admit(name, "A")
    t.set_waiting("a1", False)  # a complete request: the server owes the answer
    t.set_waiting("a2", False)
    assert t.admit("a4", "A") == (None, ["a3"])
    t.set_waiting("a4", False)
    assert t.admit("a5", "A") == (429, [])  # all three are being served: the address's share is used
    assert t.held["A"] == 3
    t.set_waiting("a1", True)  # its response ended: waiting for the next head, heard from now
    assert t.admit("a5", "A") == (None, ["a1"])


def test_a_full_server_takes_from_the_address_holding_the_most():
    """Stalled connections first (least recently heard of the address holding the most), then, when
    all are served, the longest response of an address holding more than the newcomer's will."""
    t = table(max_connections=6, client_connections=4)
    for i in range(4):
        t.admit(f"b{i}", "B")
    t.admit("c0", "C")
    t.admit("c1", "C")
    assert len(t) == 6
    assert t.admit("d0", "D") == (None, ["b0"])  # B holds the most; b0 is its least recently heard
    assert t.admit("d1", "D") == (None, ["b1"])  # B still holds the most (3)
    t.heard("b2")
    t.heard("b3")  # B, C and D hold 2 each: the tie goes against C, heard from least recently
    assert t.admit("d2", "D") == (None, ["c0"])
    for name in ("b2", "b3", "c1", "d0", "d1", "d2"):
        t.set_waiting(name, False)
    # every connection is being served (B 2, C 1, D 3): D holds more than E will, so it gives up
    # the response served longest
    assert t.admit("e0", "E") == (None, ["d0"])
    t.set_waiting("e0", False)
    assert t.admit("e1", "E") == (503, [])  # B and D hold 2 each, no more than E would: E waits
    assert len(t) == 6 and "e1" not in t.client_of


def test_exempt_addresses_share_only_the_server_cap():
    t = table(max_connections=4, client_connections=1, exempt=frozenset({"127.0.0.1"}))
    for i in range(4):
        assert t.admit(f"l{i}", "127.0.0.1") == (None, [])
    assert t.admit("x", "10.0.0.2") == (None, ["l0"])


def test_counts_go_back_to_nothing():
    t = table()
    t.admit("a1", "A")
    t.admit("b1", "B")
    t.set_waiting("b1", False)
    for name in ("a1", "b1", "a1", "never-admitted"):
        t.leave(name)
        t.heard(name)
        t.set_waiting(name, True)
    assert len(t) == 0 and not t.held and not t.waiting
