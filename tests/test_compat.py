"""raft-log interop against the reference directory written by raft-log itself."""

import os
import shutil
from pathlib import Path

import pytest

from shardlog import CorruptedLog, GroupExists, InvalidArgument, LogState, Store
from shardlog.compat import export_raft_log, import_raft_log, read_raft_log

from .conftest import snapshot
from .test_store import build_sample_data

#: Written by raft-log 0.2.6 itself (tests/data/README.md says how); a copy of shared/compat.
REFERENCE = Path(__file__).resolve().parent / "data" / "raft-log-0.2.6"


@pytest.fixture
def reference(tmp_path):
    """A copy of raft-log's directory: the tests never write into tests/data."""
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data missing: {REFERENCE}")
    dst = tmp_path / "raft-log"
    shutil.copytree(REFERENCE / "raft-log", dst)
    return dst


def _opt(v):
    return "None" if v is None else f"Some({v})"


def raft_log_dump(state, entries):
    """Our reading, printed the way raft-log printed dump.txt."""
    lines = [f"RaftLogState {{ vote: {_opt(state.vote)}, last: {_opt(state.last)}, "
             f"committed: {_opt(state.committed)}, purged: {_opt(state.purged)}, "
             f"user_data: {_opt(state.user_data)} }}"]
    lines += [f"{log_id}: {payload.decode()}" for log_id, payload in entries]
    return "\n".join(lines) + "\n"


def test_read_reference_matches_its_dump(reference):
    before = snapshot(reference)
    state, entries = read_raft_log(reference)
    assert raft_log_dump(state, entries) == (REFERENCE / "dump.txt").read_text()
    assert snapshot(reference) == before, "reading changes nothing"


def test_export_is_byte_identical(open_store, tmp_path):
    store = open_store()
    build_sample_data(store.group(7))
    names = export_raft_log(store, 7, tmp_path / "out", chunk_max_records=5)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(REFERENCE / "raft-log"))
    assert names == sorted(n for n in os.listdir(REFERENCE / "raft-log") if n.endswith(".wal"))
    for name in os.listdir(REFERENCE / "raft-log"):
        assert (tmp_path / "out" / name).read_bytes() == (REFERENCE / "raft-log" / name).read_bytes(), name


def test_export_is_byte_identical_among_other_groups_and_reopens(tmp_path, data_dir):
    """Other groups in the stream, small shardlog chunks and a restart change nothing."""
    with Store.open(data_dir, chunk_max_records=3) as store:
        # Group 8 never purges: it pins the oldest chunk, so group 7's whole
        # history stays on disk.
        store.group(8).append([((5, 0), b"other")])
        g = store.group(7)
        g.append([((1, 0), b"hi"), ((1, 1), b"hello")])
        g.append([((1, 2), b"world"), ((1, 3), b"foo")])
        g.truncate(2)
    with Store.open(data_dir, chunk_max_records=3) as store:
        g = store.group(7)
        store.group(8).save_vote((5, 1))
        g.append([((2, 2), b"world"), ((2, 3), b"foo")])
        g.commit((1, 2))
        g.purge((1, 1))
        g.append([((2, 4), b"world"), ((2, 5), b"foo"), ((2, 6), b"bar"), ((2, 7), b"wow")])
        export_raft_log(store, 7, tmp_path / "out", chunk_max_records=5)
    for name in os.listdir(REFERENCE / "raft-log"):
        assert (tmp_path / "out" / name).read_bytes() == (REFERENCE / "raft-log" / name).read_bytes(), name


def test_import_reference(open_store, reference):
    store = open_store()
    state, count = import_raft_log(store, 3, reference)
    assert count == 6
    g = store.group(3)
    want_state, want_entries = read_raft_log(reference)
    assert g.state() == want_state == state
    assert list(g.read(0, 100)) == want_entries
    g.append([((2, 8), b"after import")])
    store.close()
    g = open_store().group(3)
    assert list(g.read(0, 100)) == want_entries + [((2, 8), b"after import")]


def test_import_into_existing_group_is_refused(open_store, reference, data_dir):
    store = open_store()
    store.group(3).save_vote((1, 1))
    store.flush()
    before = snapshot(data_dir)
    with pytest.raises(GroupExists):
        import_raft_log(store, 3, reference)
    store.flush()
    assert snapshot(data_dir) == before
    assert store.group(3).state() == LogState(vote=(1, 1))


def test_import_skips_a_torn_tail_without_cutting_it(open_store, reference):
    last = sorted(reference.iterdir())[-1]
    data = last.read_bytes()
    last.write_bytes(data + b"\x00\x00\x00\x01\x00")
    before = snapshot(reference)
    store = open_store()
    import_raft_log(store, 1, reference)
    assert store.group(1).state().last == (2, 7)
    assert snapshot(reference) == before


def test_export_then_import_round_trip_after_chunks_were_removed(open_store, tmp_path):
    store = open_store(chunk_max_records=4)
    g = store.group(1)
    g.save_vote((3, 2))
    for i in range(30):
        g.append([((3, i), b"entry %d" % i)])
    g.commit((3, 20))
    g.purge((3, 15))
    g.save_user_data(b"meta")
    g.flush()
    store.flush()
    export_raft_log(store, 1, tmp_path / "out", chunk_max_records=6)
    state, entries = read_raft_log(tmp_path / "out")
    assert state == g.state()
    assert entries == list(g.read(0, 100))
    import_raft_log(store, 2, tmp_path / "out")
    assert store.group(2).state() == g.state()
    assert list(store.group(2).read(0, 100)) == list(g.read(0, 100))


def test_export_needs_an_empty_directory(open_store, tmp_path):
    store = open_store()
    store.group(1).save_vote((1, 1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(InvalidArgument, match="not empty"):
        export_raft_log(store, 1, tmp_path / "out")


def test_read_of_a_missing_directory(tmp_path):
    with pytest.raises(InvalidArgument, match="not a directory"):
        read_raft_log(tmp_path / "nope")


def test_import_of_an_empty_raft_log_creates_an_empty_group(open_store, tmp_path):
    (tmp_path / "empty").mkdir()
    store = open_store()
    state, count = import_raft_log(store, 4, tmp_path / "empty")
    assert (state, count) == (LogState(), 0)
    assert store.groups() == [4] and store.group(4).state() == LogState()
    export_raft_log(store, 4, tmp_path / "out")
    assert read_raft_log(tmp_path / "out") == (LogState(), [])


def test_a_damaged_last_record_of_a_raft_log_directory_is_damage_not_a_torn_tail(tmp_path):
    """raft-log's records have no group id: a torn tail is judged on them as
    they are (a whole last record with a bit flipped is refused, not cut)."""
    with Store.open(tmp_path / "data") as store:
        g = store.group(1)
        g.append([((1, 0), b"first"), ((1, 1), b"last!")])
        export_raft_log(store, 1, tmp_path / "out")
    newest = sorted(n for n in os.listdir(tmp_path / "out") if n.endswith(".wal"))[-1]
    f = tmp_path / "out" / newest
    data = bytearray(f.read_bytes())
    at = data.rindex(b"last!")
    data[at] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptedLog):
        read_raft_log(tmp_path / "out")
