"""Informers: every kind's cache transform, whoever asks for the informer first."""

from __future__ import annotations

import threading
from typing import Any

from aimctrl.controllers.context import EventRecorder, EventType, Informers
from aimctrl.kube.errors import NotFound
from aimctrl.kube.resources import CORE_EVENT, JOB, SECRET
from aimctrl.machinery.clock import FakeClock
from aimctrl.testing.fakeclient import FakeKubeClient


def _secret() -> dict[str, object]:
    return {
        "metadata": {
            "name": "creds",
            "namespace": "team",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"data": "x"}',
                "keep": "me",
            },
        },
        "data": {".dockerconfigjson": "e30="},
        "stringData": {"token": "t"},
    }


def test_a_secret_informer_caches_no_key_material_whoever_asks_first() -> None:
    informers = Informers(FakeKubeClient())
    # A plain request, as any controller's setup would make, without asking for a transform.
    informers.informer(SECRET).indexer.add(_secret())
    cached = informers.lister(SECRET).get("creds", "team")
    assert cached == {
        "metadata": {"name": "creds", "namespace": "team", "annotations": {"keep": "me"}}
    }


def test_other_kinds_lose_only_their_managed_fields() -> None:
    informers = Informers(FakeKubeClient())
    job = {
        "metadata": {"name": "j", "namespace": "team", "managedFields": [{}]},
        "spec": {"x": 1},
    }
    informers.informer(JOB).indexer.add(job)
    assert informers.lister(JOB).get("j", "team") == {
        "metadata": {"name": "j", "namespace": "team"},
        "spec": {"x": 1},
    }


# ------------------------------------------------------------------------------ events

MODEL = {
    "apiVersion": "aim.silogen.ai/v1alpha1",
    "kind": "AIMModel",
    "metadata": {"name": "llama", "namespace": "team", "uid": "u1", "resourceVersion": "7"},
}


def _event_writes(client: FakeKubeClient) -> list[tuple[str, str, Any]]:
    return [(a.verb, a.name, a.body) for a in client.writes() if a.resource == "events"]


def test_an_identical_event_increments_the_existing_one_instead_of_creating_another() -> None:
    client = FakeKubeClient()
    clock = FakeClock()
    recorder = EventRecorder(client, clock=clock, background=False)
    recorder.event(MODEL, EventType.NORMAL, "DiscoverySucceeded", "discovered x")
    clock.step(5)
    recorder.event(MODEL, EventType.NORMAL, "DiscoverySucceeded", "discovered x")
    recorder.event(MODEL, EventType.NORMAL, "DiscoverySucceeded", "discovered x")
    (create, patch1, patch2) = _event_writes(client)
    assert create[0] == "create"
    assert create[2]["count"] == 1
    assert create[2]["involvedObject"]["uid"] == "u1"
    assert (patch1[0], patch1[1], patch1[2]["count"]) == ("patch", create[1], 2)
    assert (patch2[0], patch2[1], patch2[2]["count"]) == ("patch", create[1], 3)
    assert recorder.sent == [("team/llama", "Normal", "DiscoverySucceeded")] * 3


def test_a_different_message_or_an_old_repeat_creates_a_new_event() -> None:
    client = FakeKubeClient()
    clock = FakeClock()
    recorder = EventRecorder(client, clock=clock, background=False, aggregate_window=60)
    recorder.event(MODEL, EventType.WARNING, "DiscoveryRetrying", "retrying in 10s")
    recorder.event(MODEL, EventType.WARNING, "DiscoveryRetrying", "retrying in 20s")
    clock.step(61)
    recorder.event(MODEL, EventType.WARNING, "DiscoveryRetrying", "retrying in 20s")
    verbs = [verb for verb, _, _ in _event_writes(client)]
    assert verbs == ["create", "create", "create"]
    assert len({name for _, name, _ in _event_writes(client)}) == 3


def test_an_expired_event_is_created_again_when_its_increment_finds_it_gone() -> None:
    client = FakeKubeClient()
    recorder = EventRecorder(client, clock=FakeClock(), background=False)
    recorder.event(MODEL, EventType.NORMAL, "Ready", "ready")
    client.fail("patch", CORE_EVENT, error=NotFound("gone", status=404, reason="NotFound"))
    recorder.event(MODEL, EventType.NORMAL, "Ready", "ready")
    assert [verb for verb, _, _ in _event_writes(client)] == ["create", "patch", "create"]


def _block_creates(client: FakeKubeClient) -> tuple[threading.Event, threading.Event]:
    """Make ``client.create`` wait for ``gate``; ``entered`` is set once a create is waiting."""
    gate = threading.Event()
    entered = threading.Event()
    original = client.create

    def blocked_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        gate.wait(5)
        return original(*args, **kwargs)

    client.create = blocked_create  # type: ignore[method-assign]
    return gate, entered


def test_background_events_never_call_the_api_in_the_caller_and_arrive_after_flush() -> None:
    client = FakeKubeClient()
    recorder = EventRecorder(client, clock=FakeClock())
    gate, entered = _block_creates(client)
    recorder.event(MODEL, EventType.NORMAL, "A", "a")  # the sender blocks in the API call...
    assert entered.wait(5)
    recorder.event(MODEL, EventType.NORMAL, "B", "b")  # ...and the caller does not
    assert not recorder.flush(timeout=0.05)
    gate.set()
    assert recorder.flush(timeout=5)
    assert [body["reason"] for _, _, body in _event_writes(client)] == ["A", "B"]


def test_a_full_queue_drops_events_and_counts_them() -> None:
    client = FakeKubeClient()
    recorder = EventRecorder(client, clock=FakeClock(), queue_size=2)
    gate, entered = _block_creates(client)
    recorder.event(MODEL, EventType.NORMAL, "R0", "in flight")
    assert entered.wait(5)
    for i in range(1, 6):
        recorder.event(MODEL, EventType.NORMAL, f"R{i}", "queued or dropped")
    assert recorder.dropped == 3
    gate.set()
    assert recorder.flush(timeout=5)
    assert [body["reason"] for _, _, body in _event_writes(client)] == ["R0", "R1", "R2"]


def test_the_sent_record_is_bounded() -> None:
    recorder = EventRecorder(FakeKubeClient(), clock=FakeClock(), background=False)
    for i in range(EventRecorder.SENT_KEPT + 10):
        recorder.event(MODEL, EventType.NORMAL, f"R{i}", "m")
    sent = recorder.sent
    assert len(sent) == EventRecorder.SENT_KEPT
    assert sent[-1] == ("team/llama", "Normal", f"R{EventRecorder.SENT_KEPT + 9}")
