"""Per-channel pacing and Retry-After holds as plain arithmetic on a given time."""

from __future__ import annotations

import pytest

from bot.core.pacing import Pace, Pacer


def test_a_burst_goes_out_then_one_post_per_interval_per_channel() -> None:
    pacer = Pacer(Pace(interval=1.0, burst=3))
    waits = []
    for _ in range(5):
        waits.append(pacer.next_post("C0ANN", 10.0))
        if waits[-1] == 0:
            pacer.posted("C0ANN", 10.0)
    assert waits == [0, 0, 0, 1.0, 1.0]
    assert pacer.next_post("C0WAR", 10.0) == 0, "another channel is not held back"
    assert pacer.next_post("C0ANN", 11.0) == 0
    pacer.posted("C0ANN", 11.0)
    assert pacer.next_post("C0ANN", 11.5) == pytest.approx(0.5)


def test_a_retry_after_holds_only_its_scope_until_it_ends() -> None:
    pacer = Pacer()
    pacer.hold("chat.postMessage:C0ANN", 100.0, 30)
    assert pacer.wait("chat.postMessage:C0ANN", 110.0) == 20
    assert pacer.wait("chat.postMessage:D0OC1", 110.0) == 0
    assert pacer.wait("chat.update", 110.0) == 0
    pacer.hold("chat.postMessage:C0ANN", 105.0, 1)  # a shorter hold does not shorten a longer one
    assert pacer.wait("chat.postMessage:C0ANN", 130.0) == 0 and pacer.wait("chat.postMessage:C0ANN", 129.0) == 1
