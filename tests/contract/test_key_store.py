"""The KeyStore contract: KV v2 as the engine relies on it, for MemoryStore and OpenBao alike."""

from __future__ import annotations

import pytest
from rotator.errors import StoreConflict


def test_an_unwritten_path_reads_as_nothing(store_world):
    """read, read_version and list_children of a path never written: None, None, ()."""
    store, path = store_world.store, store_world.path("absent")
    assert store.read(path) is None
    assert store.read_version(path, 1) is None
    assert store.list_children(path + "/") == ()


def test_versions_grow_and_check_and_set_fences_writers(store_world):
    """cas=0 creates; each write needs the current version; a stale cas is a StoreConflict."""
    store, path = store_world.store, store_world.path("rec")
    assert store.write(path, {"n": 1}, cas=0) == 1
    with pytest.raises(StoreConflict):
        store.write(path, {"n": 9}, cas=0)
    assert store.write(path, {"n": 2}, cas=1) == 2
    with pytest.raises(StoreConflict):
        store.write(path, {"n": 9}, cas=1)
    with pytest.raises(StoreConflict):
        store.write(path, {"n": 9}, cas=5)
    latest = store.read(path)
    assert latest is not None
    assert (latest.data, latest.version) == ({"n": 2}, 2)
    first = store.read_version(path, 1)
    assert first is not None
    assert (first.data, first.version) == ({"n": 1}, 1)
    assert store.read_version(path, 3) is None


def test_data_comes_back_as_json(store_world):
    """Tuples come back as lists, nesting survives, and a caller's copy is its own."""
    store, path = store_world.store, store_world.path("json")
    data = {"a": (1, 2), "b": {"c": [True, None, 1.5]}, "s": "x"}
    store.write(path, data, cas=0)
    got = store.read(path)
    assert got is not None
    assert got.data == {"a": [1, 2], "b": {"c": [True, None, 1.5]}, "s": "x"}
    got.data["b"]["c"].append("mutated")
    data["s"] = "mutated"
    again = store.read(path)
    assert again is not None
    assert again.data == {"a": [1, 2], "b": {"c": [True, None, 1.5]}, "s": "x"}


def test_destroyed_versions_are_gone_but_still_counted(store_world):
    """Destroying drops the data for good; the version numbers stay taken for cas."""
    store, path = store_world.store, store_world.path("destroy")
    store.write(path, {"v": 1}, cas=0)
    store.write(path, {"v": 2}, cas=1)
    store.write(path, {"v": 3}, cas=2)
    store.destroy_versions(path, [])  # nothing to do
    store.destroy_versions(path, [1, 7])  # an unknown version is no error
    assert store.read_version(path, 1) is None
    assert store.read_version(path, 2) is not None
    store.destroy_versions(path, [3])
    assert store.read(path) is None  # the latest is destroyed: nothing to read
    with pytest.raises(StoreConflict):
        store.write(path, {"v": 4}, cas=2)
    assert store.write(path, {"v": 4}, cas=3) == 4
    latest = store.read(path)
    assert latest is not None
    assert latest.data == {"v": 4}


def test_a_soft_deleted_latest_version_reads_as_nothing(store_world):
    """KV v2 soft delete: reads see nothing, the version stays counted, older ones readable."""
    store, path = store_world.store, store_world.path("soft")
    store.write(path, {"v": 1}, cas=0)
    store.write(path, {"v": 2}, cas=1)
    store_world.soft_delete(path)
    assert store.read(path) is None
    assert store.read_version(path, 2) is None
    older = store.read_version(path, 1)
    assert older is not None
    assert older.data == {"v": 1}
    with pytest.raises(StoreConflict):
        store.write(path, {"v": 3}, cas=0)
    assert store.write(path, {"v": 3}, cas=2) == 3


def test_list_children_names_leaves_and_folders(store_world):
    """The names right below a folder, folders with a trailing slash, sorted."""
    store = store_world.store
    for name in ("state/b", "state/a", "state/sub/x", "state/sub/y", "other/z"):
        store.write(store_world.path(name), {"n": name}, cas=0)
    assert store.list_children(store_world.path("state/")) == ("a", "b", "sub/")
    assert store.list_children(store_world.path("state/sub/")) == ("x", "y")
    store.destroy_versions(store_world.path("state/a"), [1])
    assert "a" in store.list_children(store_world.path("state/"))  # metadata remains


def test_ping_answers(store_world):
    """A reachable store answers ping without raising."""
    store_world.store.ping()
