"""Reopen after clean stops, torn tails and damage (raft-log's reopen tests and more)."""

import logging
import os

import pytest

from shardlog import ChunkGap, CorruptedLog, DirectoryLocked, LogState, Store
from shardlog.engine import codec

from .conftest import chunk_names, forget_sync, kill_after_flush, snapshot
from .test_store import SAMPLE_ENTRIES, SAMPLE_STATE, build_sample_data


@pytest.fixture
def sample(data_dir):
    """A data directory holding the sample, as a kill after the last flush leaves it;
    its last record is commit((2, 5)), the last bytes of its file (not preallocated:
    the tests cut and damage the tail, as raft-log's; see test_preallocated.py)."""
    store = Store.open(data_dir, chunk_max_records=5, chunk_preallocate=False)
    g = store.group(1)
    build_sample_data(g)
    g.commit((2, 5))
    kill_after_flush(store)
    return data_dir


def last_chunk(path):
    return path / chunk_names(path)[-1]


COMMIT_LEN = len(codec.encode(codec.COMMIT, 1, (2, 5)))


def reopen(path, **settings):
    return Store.open(path, chunk_max_records=5, **settings)


def test_reopen(sample):
    with reopen(sample) as store:
        g = store.group(1)
        assert g.state() == SAMPLE_STATE._replace(committed=(2, 5))
        assert list(g.read(0, 100)) == SAMPLE_ENTRIES


def test_reopen_unfinished_chunk(sample):
    f = last_chunk(sample)
    size = f.stat().st_size
    os.truncate(f, size - 3)  # the last record, half written
    forget_sync(sample)  # ... before the fsync that would have made it durable
    with reopen(sample) as store:
        g = store.group(1)
        assert g.state() == SAMPLE_STATE, "the torn commit is gone"
        assert list(g.read(0, 100)) == SAMPLE_ENTRIES
        assert f.stat().st_size == size - COMMIT_LEN, "the torn record was cut off"


@pytest.mark.parametrize("zeros", [3, 1024 * 33])
def test_reopen_unfinished_tailing_zero_chunk(sample, zeros):
    """Zeros after the last record are room not used yet (what a preallocated
    file holds): they stay, and the next records are written over them."""
    f = last_chunk(sample)
    before = f.read_bytes()
    os.truncate(f, len(before) + zeros)
    with reopen(sample) as store:
        g = store.group(1)
        assert g.state() == SAMPLE_STATE._replace(committed=(2, 5))
        assert list(g.read(0, 100)) == SAMPLE_ENTRIES
        assert f.stat().st_size == len(before) + zeros
        g.save_vote((3, 1), flush=True)
        after = f.read_bytes()
        assert after[:len(before)] == before
        assert codec.decode(after, len(before))[0].type == codec.SAVE_VOTE  # where the zeros began
    with reopen(sample) as store:
        assert store.group(1).state() == SAMPLE_STATE._replace(committed=(2, 5), vote=(3, 1))


def test_reopen_unfinished_tailing_not_all_zero_chunk(sample):
    f = last_chunk(sample)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(size + 1024 * 32)
        fh.seek(size + 1024 * 32)
        fh.write(b"\x01")
    before = snapshot(sample)
    with pytest.raises(CorruptedLog) as err:
        reopen(sample, recovery_mode="strict")  # raft-log's rule
    assert err.value.path == str(f)
    assert err.value.offset == size
    assert f"{f}: offset {size}:" in str(err.value)
    assert snapshot(sample) == before, "a failed open changes nothing"
    # The default takes it for what a crash leaves past the synced point.
    with reopen(sample) as store:
        assert store.group(1).state() == SAMPLE_STATE._replace(committed=(2, 5))
        assert f.stat().st_size == size


def test_reopen_unfinished_non_last_chunk(sample):
    names = chunk_names(sample)
    f = sample / names[-2]
    size = f.stat().st_size
    os.truncate(f, size - 1)
    with pytest.raises(CorruptedLog) as err:
        reopen(sample)
    assert err.value.path == str(f)
    assert "needs 1 more bytes" in str(err.value)


def test_reopen_damaged_last_record(sample):
    f = last_chunk(sample)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.seek(size - 2)
        byte = fh.read(1)
        fh.seek(size - 2)
        fh.write(bytes([(byte[0] + 1) % 256]))
    before = snapshot(sample)
    with pytest.raises(CorruptedLog, match="crc32 checksum mismatch") as err:
        reopen(sample, recovery_mode="strict")
    assert err.value.offset == size - COMMIT_LEN, "names the damaged record's offset"
    assert snapshot(sample) == before


def test_damaged_tail_of_the_newest_chunk_is_cut_by_default(sample, caplog):
    """What a power loss leaves past the synced point: cut, and said in the log."""
    f = last_chunk(sample)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.seek(size - COMMIT_LEN + 6)
        fh.write(b"\xff\xee")
        fh.write(os.urandom(300))
    forget_sync(sample)
    with caplog.at_level(logging.WARNING), reopen(sample) as store:
        assert store.group(1).state() == SAMPLE_STATE, "the damaged commit is gone"
        assert list(store.group(1).read(0, 100)) == SAMPLE_ENTRIES
        assert f.stat().st_size == size - COMMIT_LEN
    assert any("cutting damaged tail" in r.getMessage() for r in caplog.records)


def test_salvage_skips_damage_and_reports_it(sample, caplog):
    names = chunk_names(sample)
    f = sample / names[0]
    data = bytearray(f.read_bytes())
    live = [log_id for log_id, _ in SAMPLE_ENTRIES]
    first_append = next(pos for pos, rec, _ in codec.iter_records(data)
                        if rec.type == codec.APPEND and rec.value[0] in live)
    lost_log_id, _ = codec.decode(data, first_append)[0].value
    data[first_append + 20] ^= 0x01  # inside the term of the chunk's first Append
    f.write_bytes(bytes(data))
    with reopen(sample) as store:  # the footer is whole: the damage shows when the entry is read
        with pytest.raises(CorruptedLog) as err:
            list(store.group(1).read(0, 100))
        assert (err.value.path, err.value.offset) == (str(f), first_append)
    with pytest.raises(CorruptedLog):
        reopen(sample, read_footers=False)
    with caplog.at_level(logging.ERROR), reopen(sample, recovery_mode="salvage") as store:
        assert store.group(1).state().last == (2, 7)
        got = list(store.group(1).read(0, 100))
    assert got and lost_log_id not in [log_id for log_id, _ in got]
    assert set(got) <= set(SAMPLE_ENTRIES), "what was kept is exactly what was written"
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"offset {first_append}: skipping" in m for m in messages)
    assert any("lost" in m for m in messages)


def test_reopen_damaged_closed_chunk(sample):
    f = sample / chunk_names(sample)[0]
    data = bytearray(f.read_bytes())
    data[60] ^= 0x04
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptedLog) as err:
        reopen(sample, read_footers=False)
    assert err.value.path == str(f)


def test_damaged_footer_is_refused(sample):
    """A sealed chunk whose footer does not decode is read record by record, and
    a chunk that is not the newest without a footer is damage."""
    f = sample / chunk_names(sample)[0]
    data = bytearray(f.read_bytes())
    data[-20] ^= 0x04
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptedLog) as err:
        reopen(sample)
    assert err.value.path == str(f)


def test_no_truncate_incomplete_record(sample):
    f = last_chunk(sample)
    os.truncate(f, f.stat().st_size - 3)
    forget_sync(sample)
    before = snapshot(sample)
    with pytest.raises(CorruptedLog, match="truncate_incomplete_record is off"):
        reopen(sample, truncate_incomplete_record=False)
    assert snapshot(sample) == before


def test_gap_between_chunks(sample):
    names = chunk_names(sample)
    assert len(names) >= 3
    os.unlink(sample / names[1])
    with pytest.raises(ChunkGap) as err:
        reopen(sample)
    assert err.value.path == str(sample / names[2])
    assert "gap between chunks" in str(err.value)


def test_empty_last_chunk_is_dropped(sample):
    """A chunk file created just before a crash, with nothing in it: recovery removes it
    (the next chunk opens at the same offset, and is written only once there is something)."""
    end = sum((sample / n).stat().st_size for n in chunk_names(sample))
    from shardlog.workers.naming import chunk_file_name
    empty = sample / chunk_file_name(int(chunk_names(sample)[0][2:-4].replace("_", "")) + end)
    empty.write_bytes(b"")
    before = chunk_names(sample)
    with reopen(sample) as store:
        assert not empty.exists(), "the empty chunk is removed at open"
        assert chunk_names(sample) == [n for n in before if n != empty.name]
        assert store.group(1).state() == SAMPLE_STATE._replace(committed=(2, 5))


def test_second_open_is_refused(sample):
    store = reopen(sample)
    try:
        with pytest.raises(DirectoryLocked, match=f"in use by another process \\(pid {os.getpid()}\\)"):
            reopen(sample)
    finally:
        store.close()
    reopen(sample).close()


def test_foreign_files_are_ignored(sample, caplog):
    (sample / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING), reopen(sample) as store:
        assert store.group(1).state().last == (2, 7)
    assert any("notes.txt" in r.message for r in caplog.records)


def test_recovery_logs_a_summary(sample, caplog):
    with caplog.at_level(logging.INFO, logger="shardlog"), reopen(sample):
        pass
    assert any("recovered 1 groups" in r.getMessage() for r in caplog.records)


def test_footer_that_lies_is_caught_by_full_replay(sample):
    """Replaying every record checks each footer against what the records rebuilt
    (the second chunk's: the first one's gives the state its records lack)."""
    f = sample / chunk_names(sample)[1]
    data = f.read_bytes()
    at = codec.footer_start(data[-16:], len(data))
    footer, _ = codec.decode_footer(data, at)
    groups = [g._replace(state=g.state._replace(last=(9, 9))) for g in footer.groups()]  # same length
    f.write_bytes(data[:at] + codec.encode_footer(footer.chunk_offset, groups, footer.terms, footer.offsets,
                                                  footer.sizes))
    with pytest.raises(CorruptedLog, match="disagrees with replay"):
        reopen(sample, read_footers=False)


def test_many_reopens_do_not_pile_up_chunks(data_dir):
    with Store.open(data_dir) as store:
        store.group(1).append([((1, 0), b"x")])
        store.group(1).purge((1, 0))
    for _ in range(5):
        Store.open(data_dir).close()
    assert len(chunk_names(data_dir)) <= 2, "chunks holding nothing live are removed"
    with Store.open(data_dir) as store:
        assert store.group(1).state() == LogState(last=(1, 0), purged=(1, 0))


def test_dump_stops_at_damage_or_salvages_past_it(sample, capsys):
    from shardlog.cli.main import main

    f = sample / chunk_names(sample)[0]
    data = bytearray(f.read_bytes())
    second = list(codec.iter_records(bytes(data)))[1][0]
    data[second + 5] ^= 0xFF
    f.write_bytes(bytes(data))
    assert main(["dump", str(sample)]) == 0
    out = capsys.readouterr().out
    assert f"DAMAGED from offset {second} to the end of the file" in out
    assert main(["dump", str(sample), "--recovery-mode", "salvage"]) == 0
    out = capsys.readouterr().out
    assert "bytes skipped" in out and "R-00002" in out, "went on past the damage"


def test_a_state_that_disagrees_with_the_entries_is_refused_or_salvaged(sample):
    """A stream whose State record says last (9, 9) while the last entry held is (2, 7):
    appends on top of it would be misfiled, so open refuses it, naming the group;
    salvage opens it with last set to the last entry held."""
    f = last_chunk(sample)
    lie = codec.encode(codec.STATE, 1, SAMPLE_STATE._replace(last=(9, 9)))
    f.write_bytes(f.read_bytes() + lie)
    with pytest.raises(CorruptedLog, match="group 1: last \\(9, 9\\) but the last entry held is \\(2, 7\\)"):
        reopen(sample)
    with reopen(sample, recovery_mode="salvage") as store:
        assert store.group(1).state().last == (2, 7)
        store.group(1).append([((2, 8), b"next")])
