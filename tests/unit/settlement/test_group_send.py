"""The group sender alone, with recording doubles for the batch and single sends."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gpumarket.errors import ContractReverted, PaymentRequired, Unreachable
from gpumarket.settlement.group_send import GroupSender


class Chain:
    """Records what was sent; refuses batches holding a 'bad' item, and 'bad' items alone."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def many(self, items: list[str]) -> list[str]:
        if "bad" in items:
            raise ContractReverted("StakeTooLow")
        if "down" in items:
            raise Unreachable("the chain went away")
        self.sent.append(list(items))
        return [f"{item}@batch{len(self.sent)}" for item in items]

    def one(self, item: str) -> str:
        if item == "bad":
            raise PaymentRequired("stake more")
        self.sent.append([item])
        return f"{item}@single{len(self.sent)}"


def queued_behind_gate(sender: GroupSender[str, str], items: list[str]) -> list[object]:
    """Send every item while the gate is held (a transaction waiting for its block), once all
    of them queue; each one's answer."""

    def run(item: str) -> object:
        try:
            return sender.send(item)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(items)) as pool:
        with sender.gate:
            answers = [pool.submit(run, item) for item in items]
            while sender.queued() < len(items):
                time.sleep(0.001)
        return [a.result(10) for a in answers]


def test_an_idle_sender_sends_at_once_and_alone() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=50)
    assert sender.send("a") == "a@single1"
    assert sender.send("b") == "b@single2"
    assert chain.sent == [["a"], ["b"]]


def test_what_queues_behind_a_send_goes_out_in_one_batch() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=50)
    answers = queued_behind_gate(sender, ["a", "b", "c"])
    assert chain.sent == [["a", "b", "c"]]
    assert answers == ["a@batch1", "b@batch1", "c@batch1"]


def test_batches_are_cut_at_the_batch_size() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=2)
    answers = queued_behind_gate(sender, ["a", "b", "c"])
    assert sorted(len(batch) for batch in chain.sent) == [1, 2]
    assert all(isinstance(a, str) and a.startswith(i) for a, i in zip(answers, "abc", strict=True))


def test_a_refused_batch_goes_item_by_item_and_each_gets_its_own_answer() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=50)
    answers = queued_behind_gate(sender, ["a", "bad", "c"])
    assert chain.sent == [["a"], ["c"]]
    assert answers[0] == "a@single1" and answers[2] == "c@single2"
    assert isinstance(answers[1], PaymentRequired)


def test_an_unreachable_chain_answers_every_request_and_releases_them() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=50)
    answers = queued_behind_gate(sender, ["a", "down", "c"])
    assert all(isinstance(a, Unreachable) for a in answers)
    assert sender.queued() == 0 and not sender.gate.locked()
    assert sender.send("d") == "d@single1"  # and the next request goes on as usual


def test_a_request_whose_item_another_sent_does_not_send_again() -> None:
    chain = Chain()
    sender = GroupSender(chain.many, chain.one, batch_size=50)
    answers = queued_behind_gate(sender, [f"j{i}" for i in range(8)])
    assert chain.sent == [[f"j{i}" for i in range(8)]]  # one sender took them all
    assert answers == [f"j{i}@batch1" for i in range(8)]


@pytest.mark.parametrize("size", [0, -1])
def test_nonsense_batch_sizes_are_caught_by_the_settings(size: int) -> None:
    from pydantic import ValidationError

    from gpumarket.coordinator.settings import CoordinatorSettings

    with pytest.raises(ValidationError, match="chain_batch_size"):
        CoordinatorSettings(chain_batch_size=size)
