"""The lifecycle model says what §2.1, §2.2 and §3.1.1 say (no implementation involved)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from impl.spec import Feature, InterruptBit, Status
from model.status import PREREQUISITES, Lifecycle, Outcome

ACK, DRV, FOK, DOK, FAILED = (
    Status.ACKNOWLEDGE, Status.DRIVER, Status.FEATURES_OK, Status.DRIVER_OK, Status.FAILED,
)
OFFER = frozenset({Feature.VERSION_1, 5})
HANDSHAKE = (ACK, DRV, FOK, DOK)


def fresh(legacy: bool = False) -> Lifecycle:
    return Lifecycle(offered=OFFER, queue_max=(4,), legacy=legacy)


def live() -> Lifecycle:
    model = fresh()
    model.write_status(frozenset({ACK}))
    model.write_status(frozenset({ACK, DRV}))
    model.write_features(frozenset({Feature.VERSION_1}))
    assert model.write_status(frozenset({ACK, DRV, FOK})) is Outcome.APPLIED
    assert model.enable_queue(0, 4, layout_valid=True) is Outcome.APPLIED
    assert model.write_status(frozenset(HANDSHAKE)) is Outcome.APPLIED
    return model


def test_the_prerequisites_order_the_handshake() -> None:
    for earlier, later in pairwise(HANDSHAKE):
        assert earlier in PREREQUISITES[later]
        assert PREREQUISITES[earlier] < PREREQUISITES[later]
    assert PREREQUISITES[FAILED] == frozenset()


def test_a_bit_out_of_order_needs_reset_and_changes_nothing_else() -> None:
    model = fresh()
    assert model.write_status(frozenset({DRV})) is Outcome.NEEDS_RESET
    assert model.status == frozenset() and model.needs_reset
    assert model.view().interrupt_status == 0  # not live: no interrupt owed


def test_clearing_a_bit_when_live_needs_reset_with_one_config_interrupt() -> None:
    model = live()
    assert model.write_status(frozenset({ACK})) is Outcome.NEEDS_RESET
    assert model.interrupts == frozenset({InterruptBit.CONFIG_CHANGE})
    model.acknowledge(frozenset({InterruptBit.CONFIG_CHANGE}))
    model.write_status(frozenset({ACK}))
    assert model.interrupts == frozenset()  # already flagged: no second interrupt


def test_features_ok_needs_a_subset_of_the_offer_with_version_1() -> None:
    model = fresh()
    model.write_status(frozenset({ACK, DRV}))
    model.write_features(frozenset({5}))
    assert model.write_status(frozenset({ACK, DRV, FOK})) is Outcome.FEATURES_REFUSED
    model.write_features(frozenset({Feature.VERSION_1, 9}))
    assert model.write_status(frozenset({ACK, DRV, FOK})) is Outcome.FEATURES_REFUSED
    assert FOK not in model.status and not model.frozen


def test_features_freeze_at_features_ok_and_legacy_at_driver_ok() -> None:
    model = live()
    assert model.write_features(frozenset({5})) is Outcome.IGNORED
    legacy = fresh(legacy=True)
    legacy.write_status(frozenset({ACK, DRV}))
    legacy.write_features(frozenset({5, 9}))
    assert legacy.write_status(frozenset({ACK, DRV, DOK})) is Outcome.APPLIED
    assert legacy.frozen and legacy.negotiated == frozenset({5})


def test_queues_enable_only_before_driver_ok_with_a_valid_layout() -> None:
    model = fresh()
    assert model.enable_queue(0, 3, layout_valid=True) is Outcome.IGNORED
    assert model.enable_queue(0, 8, layout_valid=True) is Outcome.IGNORED
    assert model.enable_queue(0, 4, layout_valid=False) is Outcome.IGNORED
    assert model.kick(0) is Outcome.IGNORED
    model = live()
    assert model.kick(0) is Outcome.APPLIED and model.kick(1) is Outcome.IGNORED
    assert model.disable_queue(0) is Outcome.IGNORED


def test_the_interrupt_promise_holds_until_the_callback_runs() -> None:
    model = live()
    model.used(0, wanted=False)
    assert model.owed == set()
    model.used(0, wanted=True)
    assert model.owed == {0} and InterruptBit.USED_BUFFER in model.interrupts
    model.callbacks_ran({0})
    assert model.owed == set()


def test_config_changes_interrupt_only_when_live() -> None:
    model = fresh()
    model.config_change()
    assert model.generation == 1 and model.interrupts == frozenset()
    model = live()
    model.config_change()
    assert model.interrupts == frozenset({InterruptBit.CONFIG_CHANGE})


@given(st.lists(st.sets(st.sampled_from([ACK, DRV, FOK, DOK, FAILED])), max_size=20))
def test_without_reset_the_driver_bits_only_grow_and_stay_ordered(
    writes: list[set[Status]],
) -> None:
    model = fresh()
    model.write_features(frozenset({Feature.VERSION_1}))
    before: frozenset[Status] = frozenset()
    for bits in writes:
        if not bits:
            continue
        model.write_status(frozenset(bits))
        assert before <= model.status
        for bit in model.status:
            assert PREREQUISITES[bit] <= model.status
        before = model.status
