"""Informers: every kind's cache transform, whoever asks for the informer first."""

from __future__ import annotations

from aimctrl.controllers.context import Informers
from aimctrl.kube.resources import JOB, SECRET
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
