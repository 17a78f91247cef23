"""Predicates and their combinators."""

from __future__ import annotations

from aimctrl.machinery.predicate import (
    AnnotationChanged,
    Funcs,
    GenerationChanged,
    LabelChanged,
    LabelSelector,
    Predicate,
    ResourceVersionChanged,
    ViewChanged,
    and_,
    not_,
    or_,
    stable_metadata,
)
from aimctrl.testing.fakes import obj


def test_generation_changed_passes_creates_and_deletes_but_filters_status_updates() -> None:
    p = GenerationChanged()
    a1 = obj("a", "1", generation=1)
    assert p.create(a1)
    assert p.delete(a1)
    assert not p.update(a1, obj("a", "2", generation=1))
    assert p.update(a1, obj("a", "3", generation=2))


def test_resource_version_changed_filters_resyncs() -> None:
    p = ResourceVersionChanged()
    a1 = obj("a", "1")
    assert not p.update(a1, a1)
    assert p.update(a1, obj("a", "2"))


def test_view_changed_filters_updates_outside_the_view_but_passes_replays() -> None:
    p = ViewChanged(lambda o: (o.get("metadata") or {}).get("labels"))
    a1 = obj("a", "1", labels={"x": "1"})
    assert p.create(a1)
    assert p.delete(a1)
    assert not p.update(a1, obj("a", "2", labels={"x": "1"}))  # moved outside the view
    assert p.update(a1, obj("a", "3", labels={"x": "2"}))
    assert p.update(a1, a1)  # a resync replays the same version: always passes


def test_stable_metadata_leaves_out_what_every_write_moves() -> None:
    a = obj("a", "7", labels={"x": "1"})
    a["metadata"]["managedFields"] = [{"manager": "m"}]
    assert stable_metadata(a) == {"name": "a", "namespace": "ns", "labels": {"x": "1"}}


def test_label_and_annotation_changed() -> None:
    assert LabelChanged().update(obj("a", "1"), obj("a", "2", labels={"x": "1"}))
    assert not LabelChanged().update(obj("a", "1", labels={}), obj("a", "2"))
    assert AnnotationChanged().update(obj("a", "1"), obj("a", "2", annotations={"k": "v"}))


def test_label_selector_checks_the_new_object_on_update() -> None:
    p = LabelSelector({"app": "aim"})
    yes = obj("a", "1", labels={"app": "aim", "x": "y"})
    no = obj("a", "2", labels={"app": "other"})
    assert p.create(yes)
    assert not p.create(no)
    assert p.update(no, yes)
    assert not p.update(yes, no)
    assert not p.delete(no)


def test_combinators_and_operators() -> None:
    gen, sel = GenerationChanged(), LabelSelector({"app": "aim"})
    old = obj("a", "1", generation=1, labels={"app": "aim"})
    same_gen = obj("a", "2", generation=1, labels={"app": "aim"})
    assert not (gen & sel).update(old, same_gen)
    assert (gen | sel).update(old, same_gen)
    assert (~gen).update(old, same_gen)
    assert and_(gen, sel).create(old)
    assert not or_().create(old)
    assert and_().create(old)
    assert not not_(sel).create(old)


def test_funcs_and_base_predicate_default_to_pass() -> None:
    a = obj("a", "1")
    assert Predicate().create(a)
    assert Predicate().update(a, a)
    p = Funcs(delete=lambda o: False)
    assert p.create(a)
    assert p.update(a, a)
    assert not p.delete(a)
