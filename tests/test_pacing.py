"""The pacer: one call per interval per key; later runs are booked the next free slot."""

from __future__ import annotations

from datetime import timedelta

from responder.pipeline.pacing import Pacer
from tests.stagekit import NOW

SECOND = timedelta(seconds=1)
MS = timedelta(milliseconds=1)


def test_the_first_call_of_a_key_goes_at_once() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None
    assert not pacer.waiting(NOW)


def test_later_calls_are_booked_one_interval_apart() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None
    assert pacer.slot("C1", 1.0, 2, NOW) == NOW + SECOND
    assert pacer.slot("C1", 1.0, 3, NOW) == NOW + 2 * SECOND
    assert pacer.waiting(NOW)


def test_keys_are_paced_apart() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None
    assert pacer.slot("C2", 1.0, 2, NOW) is None
    assert pacer.slot("C2", 1.0, 3, NOW) == NOW + SECOND


def test_a_booked_run_asking_again_early_keeps_its_slot() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    assert pacer.slot("C1", 1.0, 2, NOW) == NOW + SECOND
    later = NOW + 400 * MS
    assert pacer.slot("C1", 1.0, 2, later) == NOW + SECOND  # same slot, not a new one
    # and the slot after it is still the next one
    assert pacer.slot("C1", 1.0, 3, later) == NOW + 2 * SECOND


def test_a_booked_run_goes_within_the_early_tolerance() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    slot = pacer.slot("C1", 1.0, 2, NOW)
    assert slot == NOW + SECOND
    assert pacer.slot("C1", 1.0, 2, slot - 51 * MS) == slot  # too early by more than 50 ms
    assert pacer.slot("C1", 1.0, 2, slot - 50 * MS) is None  # close enough: it goes
    assert not pacer.waiting(slot)  # its booking is used up


def test_a_booked_run_coming_back_late_goes() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    slot = pacer.slot("C1", 1.0, 2, NOW)
    assert slot is not None
    assert pacer.slot("C1", 1.0, 2, slot + 5 * SECOND) is None


def test_after_a_quiet_interval_the_next_call_goes_at_once() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None
    assert pacer.slot("C1", 1.0, 2, NOW + SECOND) is None
    assert pacer.slot("C1", 1.0, 3, NOW + SECOND + 500 * MS) == NOW + 2 * SECOND


def test_a_zero_interval_never_waits() -> None:
    pacer = Pacer()
    assert [pacer.slot("C1", 0.0, run, NOW) for run in (1, 2, 3)] == [None, None, None]


def test_a_released_booking_is_forgotten_but_its_slot_stays_taken() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    assert pacer.slot("C1", 1.0, 2, NOW) == NOW + SECOND
    pacer.release(2)
    assert not pacer.waiting(NOW)
    # asking again, it is a newcomer: booked after the slot it had
    assert pacer.slot("C1", 1.0, 2, NOW) == NOW + 2 * SECOND


def test_releasing_an_unknown_run_does_nothing() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    pacer.slot("C1", 1.0, 2, NOW)
    pacer.release(99)
    assert pacer.waiting(NOW)


def test_waiting_drops_bookings_long_past() -> None:
    pacer = Pacer()
    pacer.slot("C1", 1.0, 1, NOW)
    slot = pacer.slot("C1", 1.0, 2, NOW)
    assert slot is not None
    # a booking whose run has not come back yet still counts, for a minute after its slot
    assert pacer.waiting(slot + timedelta(minutes=1))
    # then it is taken to be claimed elsewhere or cancelled, and forgotten
    assert not pacer.waiting(slot + timedelta(minutes=1) + MS)
    assert pacer.slot("C1", 1.0, 2, slot + timedelta(minutes=2)) is None


def test_a_run_that_went_late_pushes_the_next_one_back() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None
    assert pacer.slot("C1", 1.0, 2, NOW) == NOW + SECOND
    assert pacer.slot("C1", 1.0, 3, NOW) == NOW + 2 * SECOND
    # Run 2 comes back half a second after its slot (the worker's poll) and goes then...
    assert pacer.slot("C1", 1.0, 2, NOW + 1500 * MS) is None
    # ...so run 3, back on time for its own slot, waits a full interval after run 2.
    assert pacer.slot("C1", 1.0, 3, NOW + 2 * SECOND) == NOW + 2450 * MS
    assert pacer.slot("C1", 1.0, 3, NOW + 2450 * MS) is None
    # And a newcomer is booked after that.
    assert pacer.slot("C1", 1.0, 4, NOW + 2450 * MS) == NOW + 3450 * MS


def test_a_call_that_leaves_later_than_its_slot_moves_the_interval() -> None:
    pacer = Pacer()
    assert pacer.slot("C1", 1.0, 1, NOW) is None  # taken as its batch began...
    pacer.went("C1", 1.0, NOW + 300 * MS)  # ...and sent once the batch was committed
    assert pacer.slot("C1", 1.0, 2, NOW + 400 * MS) == NOW + 1300 * MS
