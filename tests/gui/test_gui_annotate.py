"""The annotator perspective: browse and filter, edit with undo/redo into label revisions, review, export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.annotate import AnnotateView
from app.annotate_data import Filters, list_entries
from core.classes import CLASSES
from core.store.errors import PermissionDenied
from core.store.values import Box
from store_world import World
from tiny_dataset import make_tiny_dataset


pytestmark = pytest.mark.usefixtures("cheap_passwords")   # tests/gui/conftest.py


@pytest.fixture
def view(qtbot, world: World):
    annotate = AnnotateView(world.store, world.annotator)
    qtbot.addWidget(annotate)
    annotate.resize(1200, 700)
    annotate.show()
    with qtbot.waitSignal(annotate.entries_loaded, timeout=5000):
        annotate.refresh()
    yield annotate
    annotate.shutdown()


def open_bag(qtbot, view: AnnotateView, bag_id: int) -> None:
    row = next(i for i, e in enumerate(view.shown) if e.bag.id == bag_id)
    with qtbot.waitSignal(view.bag_opened, timeout=5000):
        view.open_row(row)


def test_filters_by_class_disagreement_and_review_state(qtbot, view: AnnotateView, world: World) -> None:
    ids = [b.id for b in world.bags]
    assert [e.bag.id for e in view.shown] == ids
    view.class_combo.setCurrentIndex(1 + CLASSES.index("Straight_Knife"))
    assert [e.bag.id for e in view.shown] == [ids[0], ids[2], ids[3]]   # labelled, or the model is confident
    view.class_combo.setCurrentIndex(1 + CLASSES.index("Scissor"))
    assert view.shown == []          # only 0.35 scissor predictions; bag 2's TIP truth is not a label
    view.class_combo.setCurrentIndex(0)
    view.disagree_check.setChecked(True)
    assert [e.bag.id for e in view.shown] == [ids[2]]                   # labelled empty, model saw a knife
    view.disagree_check.setChecked(False)
    view.unreviewed_check.setChecked(True)
    assert len(view.shown) == 4 and view.count_label.text() == "4 of 4 bags"


def test_edit_undo_redo_and_review_become_revisions(qtbot, view: AnnotateView, world: World) -> None:
    bag = world.bags[1]
    open_bag(qtbot, view, bag.id)
    assert view.revision_label.text() == "labels v1 (deleted)"
    with qtbot.waitSignal(view.labels_saved, timeout=5000):
        view.canvas.add_box((20.0, 30.0, 90.0, 100.0), CLASSES.index("Scissor"))
    with qtbot.waitSignal(view.labels_saved, timeout=5000):
        view.canvas.undo_stack.undo()
    with qtbot.waitSignal(view.labels_saved, timeout=5000):
        view.canvas.undo_stack.redo()
    history = world.store.labels.history(bag.id)
    assert [(r.version, r.origin, len(r.boxes)) for r in history] == [
        (1, "deleted", 0), (2, "added", 1), (3, "deleted", 0), (4, "added", 1)]
    assert history[-1].boxes[0] == Box("Scissor", 20.0, 30.0, 90.0, 100.0)
    assert all(r.author_id == world.annotator.id for r in history[1:])
    with qtbot.waitSignal(view.labels_saved, timeout=5000):
        assert view.mark_reviewed()
    assert world.store.labels.current(bag.id).origin == "mixed"
    assert view.current.reviewed and view.revision_label.text() == "labels v5 (mixed)"
    view.unreviewed_check.setChecked(True)
    assert bag.id not in [e.bag.id for e in view.shown]


def test_a_conflicting_save_is_refused_and_the_newer_labels_reload(qtbot, view: AnnotateView, world: World) -> None:
    bag = world.bags[0]
    open_bag(qtbot, view, bag.id)
    world.store.labels.save(world.admin, bag.id, [], origin="deleted", base_version=1)   # someone else, meanwhile
    with qtbot.waitSignal(view.bag_opened, timeout=5000):
        view.canvas.add_box((10.0, 10.0, 60.0, 60.0), 0)
    assert "changed while you edited" in view.message_text
    assert world.store.labels.current(bag.id).version == 2                # nothing of ours was written
    assert view.revision_label.text() == "labels v2 (deleted)" and view.canvas.label_boxes() == []


def test_import_an_opixray_dataset_then_filter_by_ol_and_export(qtbot, view: AnnotateView, world: World,
                                                                tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "opixray", n_train=2, n_test=3)
    with qtbot.waitSignal(view.entries_loaded, timeout=10000):
        view.import_dataset(root)
    imported = [e for e in view.entries if e.bag.source == "import"]
    assert len(imported) == 5 and {e.labels.origin for e in imported} == {"imported"}
    assert sorted(e.occlusion_level for e in imported if e.occlusion_level) == [1, 2, 3]
    view.ol_combo.setCurrentIndex(2)
    assert [e.name for e in view.shown] == ["te0001"]
    view.ol_combo.setCurrentIndex(0)
    for fmt in ("opixray", "coco", "yolo", "voc"):
        with qtbot.waitSignal(view.exported, timeout=10000) as signal:
            view.export(tmp_path / f"out-{fmt}", fmt)
        assert signal.args[0]
    assert (tmp_path / "out-opixray" / "test" / "test_annotation" / "te0001.txt").read_text().split()[1] == \
        CLASSES[1]
    assert len(list((tmp_path / "out-opixray" / "test" / "test_image").iterdir())) == 9
    coco = {p.name: json.loads(p.read_text()) for p in (tmp_path / "out-coco").rglob("*.json")}
    assert sum(len(c["images"]) for c in coco.values()) == 9, sorted(coco)
    view.export(tmp_path / "out-opixray", "opixray")          # not empty: refused, nothing overwritten
    qtbot.waitUntil(lambda: "not" in view.message_text and "empty" in view.message_text, timeout=5000)


def test_browsing_needs_a_user_the_store_knows(world: World) -> None:
    from core.store.values import UserInfo
    with pytest.raises(PermissionDenied):
        list_entries(world.store, UserInfo(999, "ghost", "admin", True, None))
    assert Filters().accepts(list_entries(world.store, world.annotator)[0])
