"""Preallocated chunk files: made ahead, renamed into place, cut to their footer,
and told apart from torn writes at recovery (workers/writer.py)."""

import errno
import logging
import os

import pytest

from shardlog import ChunkMissing, CorruptedLog, DiskFailed, Store
from shardlog.engine import codec
from shardlog.engine.flusher import ThreadFlusher
from shardlog.workers.files import OsFiles
from shardlog.workers.marks import read_marks
from shardlog.workers.messages import RemoveRequest, WriteRequest
from shardlog.workers.naming import PREPARED_FILE, chunk_file_name
from shardlog.workers.writer import ChunkWriter

from .conftest import chunk_names, forget_sync, kill_after_flush
from .service import poll_for

PAYLOAD = b"p" * 100


def fill(store, gid, first, n):
    g = store.group(gid)
    for i in range(first, first + n):
        g.append([((1, i), PAYLOAD)])
    g.flush()
    return g


def written_and_killed(data_dir):
    """Five entries, then a kill: the chunk file and where its records end in it."""
    store = Store.open(data_dir)
    fill(store, 1, 0, 5)
    end = store.stat()["disks"][0]["end"]
    kill_after_flush(store)
    [name] = chunk_names(data_dir)
    return data_dir / name, end - int(name[2:-4].replace("_", ""))


def prepared_made(data_dir, size):
    """Wait until the flush thread, idle, has made the next chunk's file."""
    path = data_dir / PREPARED_FILE
    return poll_for(lambda: path.exists() and path.stat().st_size == size, 10)


def test_a_new_chunk_has_its_room_from_the_start_and_the_next_one_is_made_ahead(data_dir):
    with Store.open(data_dir, chunk_max_size=64 << 10) as store:
        fill(store, 1, 0, 10)
        [first] = chunk_names(data_dir)
        assert (data_dir / first).stat().st_size == 64 << 10  # the first chunk: min(4 MiB, chunk_max_size)
        assert prepared_made(data_dir, 64 << 10)
        prepared = (data_dir / PREPARED_FILE).stat()
        fill(store, 1, 10, 600)  # past 64 KiB: the chunk rotates
        names = chunk_names(data_dir)
        assert len(names) >= 2
        assert (data_dir / names[1]).stat().st_ino == prepared.st_ino, "the prepared file became the chunk"
        # The chunk before it was cut to its footer, so the next open reads the footer.
        store_end = store.stat()["disks"][0]
        sealed = data_dir / names[0]
        second_start = int(names[1][2:-4].replace("_", ""))
        assert sealed.stat().st_size == second_start - store_end["oldest_chunk"]
        assert codec.footer_start(sealed.read_bytes()[-16:], sealed.stat().st_size) is not None
    with Store.open(data_dir, chunk_max_size=64 << 10) as store:
        assert store.group(1).state().last == (1, 609)


def test_a_chunk_sealed_before_its_room_is_full_is_cut_to_its_footer(data_dir):
    """... when the next chunk begins, so that the next open reads its footer."""
    with Store.open(data_dir, chunk_max_records=50, chunk_max_size=64 << 10) as store:
        fill(store, 1, 0, 60)
        first, second = chunk_names(data_dir)
        size = (data_dir / first).stat().st_size
        assert size == int(second[2:-4].replace("_", "")) < 64 << 10
        assert codec.footer_start((data_dir / first).read_bytes()[-16:], size) is not None
    from shardlog.engine.recovery import replay
    assert replay(str(data_dir)).footers == 2


def test_chunks_that_close_on_their_record_count_get_little_room(data_dir):
    """Twice the biggest of the last chunks: 5-record chunks do not get 4 MiB each."""
    with Store.open(data_dir, chunk_max_records=5) as store:
        fill(store, 1, 0, 40)
        *_, newest = chunk_names(data_dir)
        assert (data_dir / newest).stat().st_size <= 8192


def test_a_torn_record_in_a_preallocated_file_is_cut_in_strict_mode_too(data_dir, caplog):
    """A record cut short reads as its first bytes, then the zeros of the room:
    a torn write, as raft-log's rule says, not damage."""
    f, end = written_and_killed(data_dir)
    data = bytearray(f.read_bytes())
    # A commit written after the last record, but only its first 10 bytes.
    record = codec.encode(codec.COMMIT, 1, (1, 4))
    data[end:end + 10] = record[:10]
    f.write_bytes(bytes(data))
    forget_sync(data_dir, synced=0)
    with caplog.at_level(logging.WARNING):
        with Store.open(data_dir, recovery_mode="strict") as store:
            assert store.group(1).state().committed is None
            assert store.group(1).state().last == (1, 4)
    assert "cutting torn tail" in caplog.text


def test_damage_followed_by_zeros_is_still_damage_in_strict_mode(data_dir):
    f, end = written_and_killed(data_dir)
    data = bytearray(f.read_bytes())
    data[end:end + 8] = b"\xff" * 8  # no record begins like this
    f.write_bytes(bytes(data))
    forget_sync(data_dir, synced=0)
    with pytest.raises(CorruptedLog):
        Store.open(data_dir, recovery_mode="strict")


def test_room_not_used_is_no_damage_and_says_nothing(data_dir, caplog):
    store = Store.open(data_dir)
    fill(store, 1, 0, 5)
    kill_after_flush(store)
    f = data_dir / chunk_names(data_dir)[-1]
    size = f.stat().st_size
    with caplog.at_level(logging.INFO, logger="shardlog"):
        with Store.open(data_dir, recovery_mode="strict", truncate_incomplete_record=False) as store:
            assert store.group(1).state().last == (1, 4)
            assert f.stat().st_size == size
    assert "cutting" not in caplog.text


def test_durable_records_gone_to_zeros_are_missing_not_room(data_dir):
    """Room is only ever after what was synced: zeros where durable records were
    are a lost write, refused as for a file cut short."""
    f, end = written_and_killed(data_dir)
    data = bytearray(f.read_bytes())
    data[end - 50:end] = bytes(50)
    f.write_bytes(bytes(data))
    with pytest.raises(ChunkMissing, match="were durable"):
        Store.open(data_dir)


def test_zeros_after_a_footer_are_cut_when_the_writer_did_not_get_to(data_dir):
    """A writer that dies between sealing a chunk and beginning the next leaves
    the sealed chunk's room after its footer."""
    with Store.open(data_dir, chunk_max_records=5) as store:
        fill(store, 1, 0, 12)
    names = chunk_names(data_dir)
    sealed = data_dir / names[0]
    size = sealed.stat().st_size
    os.truncate(sealed, size + 4096)
    with Store.open(data_dir, chunk_max_records=5) as store:
        assert store.group(1).state().last == (1, 11)
        assert list(store.group(1).read(0, 12)) == [((1, i), PAYLOAD) for i in range(12)]
    assert sealed.stat().st_size == size
    with Store.open(data_dir, chunk_max_records=5) as store:
        assert store.stat()["disks"][0]["chunks"] == len(chunk_names(data_dir))


def test_a_prepared_file_left_by_an_earlier_run_is_never_used(data_dir):
    """Its rename may not have become durable while records went into it: stale
    records must never show up in a new chunk (here they would follow the new
    chunk's records after some zeros, and be taken for damage or resurrected)."""
    with Store.open(data_dir, chunk_max_records=20) as store:
        fill(store, 1, 0, 10)
    stale = codec.encode(codec.COMMIT, 1, (1, 3)) * 100
    (data_dir / PREPARED_FILE).write_bytes(bytes(4096) + stale + bytes(4096))
    store = Store.open(data_dir, chunk_max_records=20)
    fill(store, 1, 10, 30)  # a chunk or two begins
    kill_after_flush(store)
    for name in chunk_names(data_dir):
        assert stale[:64] not in (data_dir / name).read_bytes()
    with Store.open(data_dir, chunk_max_records=20) as store:
        assert store.group(1).state().last == (1, 39)
        assert store.group(1).state().committed is None


class NoRoom(OsFiles):
    """A file system with room for records but not for a chunk's worth ahead."""

    def allocate(self, path, size):
        if os.path.basename(path) == PREPARED_FILE:
            raise OSError(errno.ENOSPC, "No space left on device (test)")
        return super().allocate(path, size)


def test_without_room_for_a_reserve_chunks_grow_as_they_are_written(data_dir, caplog):
    def factory(path, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        return ThreadFlusher(path, on_progress, on_failure, synced=synced, on_full=on_full, on_low=on_low,
                             files=NoRoom(), spare_bytes=0)

    with caplog.at_level(logging.WARNING):
        with Store.open(data_dir, flusher_factory=factory, chunk_max_size=64 << 10) as store:
            fill(store, 1, 0, 1200)
            assert store.stat()["disks"][0]["full"] is None
    assert "not preallocated" in caplog.text
    assert not (data_dir / PREPARED_FILE).exists()
    with Store.open(data_dir) as store:
        assert store.group(1).state().last == (1, 1199)


def test_preallocation_can_be_turned_off(data_dir):
    with Store.open(data_dir, chunk_preallocate=False) as store:
        fill(store, 1, 0, 10)
        disk = store.stat()["disks"][0]
        [name] = chunk_names(data_dir)
        assert (data_dir / name).stat().st_size == disk["end"] - disk["oldest_chunk"]
    assert not (data_dir / PREPARED_FILE).exists()


def test_a_writer_started_after_a_seal_cuts_the_chunk_before_too(tmp_path):
    """A worker restarted between sealing a chunk and beginning the next finds
    the sealed chunk with its room still after the footer: it cuts it before
    the next chunk begins, so every chunk but the newest is its stream size
    (the marks move by it when chunks are deleted)."""
    first = ChunkWriter(tmp_path)
    first.write_batch([WriteRequest(1, 0, 0, b"a" * 100, True, 4096)])
    first.close()
    assert (tmp_path / chunk_file_name(0)).stat().st_size == 4096
    second = ChunkWriter(tmp_path)  # the restarted worker
    second.write_batch([WriteRequest(2, 100, 100, b"b" * 10, True, 4096)])
    second.close()
    assert (tmp_path / chunk_file_name(0)).stat().st_size == 100
    assert (tmp_path / chunk_file_name(100)).stat().st_size == 4096


def test_dump_shows_room_as_room_not_damage(data_dir, capsys):
    from shardlog.cli.main import main

    f, end = written_and_killed(data_dir)
    assert main(["dump", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED" not in out and out.count("Append(g=1") == 5
    start = int(f.name[2:-4].replace("_", ""))
    assert f"ROOM [{start + end}, {start + f.stat().st_size})" in out


def test_deleting_a_chunk_still_holding_its_room_moves_the_marks_by_its_stream_size(tmp_path):
    """A chunk can be deleted before the next chunk's first write cut its room
    (a review found the interleaving: a drop_group seals it, another thread's
    flush syncs the footer, the chunk is dead at once). The marks' oldest must
    be where the stream goes on, not the file's size: the next open deletes
    every chunk below it, the live next chunk included."""
    writer = ChunkWriter(tmp_path)
    writer.write_batch([WriteRequest(1, 0, 0, b"a" * 100, True, 4096)])
    assert (tmp_path / chunk_file_name(0)).stat().st_size == 4096
    writer.write_batch([RemoveRequest(2, (0,), 100)])
    writer.remove_all(writer.take_removals())
    writer.close()
    assert read_marks(str(tmp_path))[0] == 100


@pytest.mark.parametrize("mode, short", [("tolerate-tail", False), ("strict", False), ("tolerate-tail", True)])
def test_a_page_the_writes_did_not_reach_is_torn_even_with_records_after_it(data_dir, caplog, mode, short):
    """Writes not yet fsynced reach a preallocated file a page at a time, in
    any order: the first page of the last batch read as zeros, later pages
    holding whole records. (A review showed both modes refused to open.)
    ``short``: the batch began 5 bytes before a page's end."""
    store = Store.open(data_dir)
    g = fill(store, 1, 0, 5)
    held = 5
    if short:
        end = store.stat()["disks"][0]["end"]
        g.append([((1, 5), b"s" * ((4091 - end - codec.APPEND_OVERHEAD) % 4096))], flush=True)
        held = 6
    synced = store.stat()["disks"][0]["end"]
    assert not short or synced % 4096 == 4091
    for i in range(held, 200):
        g.append([((1, i), PAYLOAD)])
    g.flush()
    kill_after_flush(store)
    [name] = chunk_names(data_dir)
    f = data_dir / name
    at = synced - int(name[2:-4].replace("_", ""))
    data = bytearray(f.read_bytes())
    page_end = (at // 4096 + 1) * 4096
    data[at:page_end] = bytes(page_end - at)  # the batch's first page did not reach the disk
    f.write_bytes(bytes(data))
    forget_sync(data_dir, synced=synced)  # (nor did the marks of its fsync)
    with caplog.at_level(logging.WARNING):
        with Store.open(data_dir, recovery_mode=mode) as store:
            assert store.group(1).state().last == (1, held - 1)
            assert list(store.group(1).read(0, 5)) == [((1, i), PAYLOAD) for i in range(5)]
            store.group(1).append([((1, held), b"again")], flush=True)
    assert "cutting torn tail" in caplog.text
    with Store.open(data_dir, recovery_mode=mode) as store:
        assert list(store.group(1).read(held, held + 5)) == [((1, held), b"again")]

def test_a_clean_stop_leaves_no_chunk_file_made_ahead(tmp_path):
    """(The next run would not use it: see the test above.)"""
    writer = ChunkWriter(tmp_path)
    writer.write_batch([WriteRequest(1, 0, 0, b"a" * 100, True, 4096)])
    writer.prepare()
    assert (tmp_path / PREPARED_FILE).stat().st_size == 4096
    writer.close()
    assert not (tmp_path / PREPARED_FILE).exists()


class CountingFiles(OsFiles):
    """Real files, with the fsyncs and directory fsyncs counted in order."""

    def __init__(self):
        self.syncs = []

    def fdatasync(self, fd):
        self.syncs.append("fsync")
        os.fdatasync(fd)

    def sync_dir(self, path):
        self.syncs.append("dir")
        super().sync_dir(path)


def test_a_rotation_into_the_prepared_file_costs_one_fsync_more_than_a_batch(tmp_path):
    """The chunk before is made durable first (only the newest chunk may be
    torn); the rename of the prepared file is not (recovery finds the chunk
    under its old name: the next test). So no request waits on a rotation
    beyond one fsync (issue 12)."""
    files = CountingFiles()
    writer = ChunkWriter(tmp_path, files=files)
    writer.write_batch([WriteRequest(1, 0, 0, b"a" * 100, True, 4096)])
    writer.prepare()  # idle: the next chunk's file, made ahead with its name durable
    assert files.syncs[-1] == "dir"
    files.syncs.clear()
    writer.write_batch([WriteRequest(2, 0, 100, b"f" * 10, False, 4096),  # the end of chunk 0 ...
                        WriteRequest(3, 110, 110, b"b" * 10, True, 4096)])  # ... and the next one
    assert files.syncs == ["fsync", "fsync"]
    writer.close()
    assert (tmp_path / chunk_file_name(110)).stat().st_size == 4096


def test_a_chunk_whose_rename_did_not_reach_the_disk_is_found_under_the_prepared_name():
    from shardlog.testing.simfs import SimFiles, open_store

    path, settings = "/sim/data", dict(chunk_max_size=4096)
    fs = SimFiles()
    store = open_store(fs, path, **settings)
    writer = store._disks[0].flusher.writer
    g = store.group(1)
    g.append([((1, 0), PAYLOAD)], flush=True)
    assert PREPARED_FILE in fs.file_names(path)
    writer.prepare = lambda: None  # no idle work after this: nothing fsyncs the directory again
    i = 1
    while len([n for n in fs.file_names(path) if n.endswith(".wal")]) < 2:
        g.append([((1, i), PAYLOAD)], flush=True)  # each acknowledged as durable
        i += 1
    g.append([((1, i), PAYLOAD)], flush=True)
    after = fs.after_crash()  # power lost: the rename into place had not reached the disk
    assert len([n for n in after.file_names(path) if n.endswith(".wal")]) == 1
    assert PREPARED_FILE in after.file_names(path)
    reopened = open_store(after, path, **settings)
    assert reopened.group(1).state().last == (1, i)
    assert list(reopened.group(1).read(0, i + 1)) == [((1, k), PAYLOAD) for k in range(i + 1)]
    assert PREPARED_FILE not in after.file_names(path) and len(after.file_names(path)) >= 2


def test_a_newest_chunk_under_the_prepared_name_is_dumped_and_taken_back(data_dir, capsys):
    from shardlog.cli.main import main

    f, _ = written_and_killed(data_dir)
    start = int(f.name[2:-4].replace("_", ""))
    os.rename(f, data_dir / PREPARED_FILE)  # as a power loss leaves a rename that had not reached the disk
    assert main(["dump", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{PREPARED_FILE} (chunk {start}: its rename had not reached the disk)" in out
    assert out.count("Append(g=1") == 5
    with Store.open(data_dir) as store:
        assert f.exists()
        assert list(store.group(1).read(0, 5)) == [((1, i), PAYLOAD) for i in range(5)]


class DirSyncFails(OsFiles):
    def __init__(self):
        self.failing = False

    def sync_dir(self, path):
        if self.failing:
            raise OSError(errno.EIO, "Input/output error (test)")
        super().sync_dir(path)


def test_a_failed_directory_fsync_while_making_the_next_chunk_fails_the_disk(data_dir):
    """The chunk file made ahead gets its name durable then, and the rename of
    the one before depends on it: its fsync failing is a failed fsync (a
    review found it logged as "not preallocated" and the disk going on)."""
    files = DirSyncFails()
    store = Store.open(data_dir, chunk_max_size=64 << 10,
                       flusher_factory=lambda *args, **kwargs: ThreadFlusher(*args, files=files, **kwargs))
    try:
        g = fill(store, 1, 0, 10)
        assert prepared_made(data_dir, 64 << 10)
        files.failing = True
        fill(store, 1, 10, 600)  # the chunk rotates into the file made ahead; the next one fails
        assert poll_for(lambda: store._disks[0].failed is not None, 10)
        with pytest.raises(DiskFailed):
            g.append([((1, 610), PAYLOAD)], flush=True)
    finally:
        files.failing = False
        store.close()


class TakesNothing(OsFiles):
    def pwrite(self, fd, data, offset):
        return 0


def test_a_write_that_takes_no_bytes_fails_the_batch_instead_of_spinning(tmp_path):
    writer = ChunkWriter(tmp_path, files=TakesNothing())
    with pytest.raises(OSError, match="took no bytes"):
        writer.write_batch([WriteRequest(1, 0, 0, b"a" * 100, True, 0)])
