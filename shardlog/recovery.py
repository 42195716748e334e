"""Rebuild a disk's groups by replaying its chunks, oldest first.

Every chunk opens with a Checkpoint of every group on the disk, so replay can
start at whatever chunk is oldest; later checkpoints must agree with what the
replay rebuilt, which catches a stream that lies. A torn last record or
trailing zeros of the *last* chunk is what a crash mid-write leaves: it is cut
off (if ``truncate_incomplete_record``). Damage anywhere else is an error
naming the file and the offset, never skipped.
"""

import logging
import os
import zlib
from typing import NamedTuple

from . import codec
from .chunks import ChunkSet
from .codec import APPEND, APPEND_HEAD, APPEND_OVERHEAD, CRC, U32, BadRecord, Incomplete
from .errors import ChunkGap, CorruptedLog
from .group import GroupState
from .naming import list_chunks
from .types import next_index
from workers.writer import fsync_dir

log = logging.getLogger(__name__)


class Recovered(NamedTuple):
    chunks: ChunkSet
    groups: dict
    #: Global offset where the stream ends (the next chunk starts here).
    end: int
    #: ``(path, original size, cut at)`` when a torn tail was cut.
    cut: tuple
    records: int


def _replay_record(rec, groups, chunks, path, pos, now):
    """Apply one non-Append record of ``path`` at ``pos``."""
    rtype, gid, value = rec
    if rtype == codec.GROUP_CREATE:
        if gid in groups:
            raise CorruptedLog(path, pos, f"group {gid} created twice")
        groups[gid] = GroupState(gid)
        return
    group = groups.get(gid)
    if group is None:
        raise CorruptedLog(path, pos, f"record for group {gid}, which does not exist here")
    if rtype == codec.SAVE_VOTE:
        group.vote = value
    elif rtype == codec.COMMIT:
        group.committed = value
    elif rtype == codec.TRUNCATE_AFTER:
        group.apply_truncate(value, chunks, now)
    elif rtype == codec.PURGE_UPTO:
        group.apply_purge(value, chunks, now)
    elif rtype == codec.STATE:
        group.set_state(value)
    elif rtype == codec.GROUP_DROP:
        group.release_all(chunks, now)
        del groups[gid]


def _apply_checkpoint(rec, groups, path, start, first_chunk):
    version, chunk_offset, states = rec.value
    if chunk_offset != start:
        raise CorruptedLog(path, 0, f"checkpoint names chunk {chunk_offset}, file is chunk {start}")
    if first_chunk:
        for gid, state in states:
            groups[gid] = GroupState(gid, state=state)
        return
    listed = dict(states)
    if listed.keys() != groups.keys():
        raise CorruptedLog(path, 0, "checkpoint lists other groups than the chunks before it hold")
    for gid, state in listed.items():
        if groups[gid].state() != state:
            raise CorruptedLog(path, 0, f"checkpoint state of group {gid} disagrees with replay: "
                                        f"{state} != {groups[gid].state()}")


def replay(data_dir, truncate_incomplete_record=True):
    """Read every chunk of ``data_dir``; cut a torn tail of the last one."""
    files, ignored = list_chunks(data_dir)
    for name in ignored:
        log.warning("%s: ignoring %s: not a chunk file name", data_dir, name)
    chunks = ChunkSet()
    groups = {}
    expected = None
    cut = ()
    records = 0
    for i, (start, path) in enumerate(files):
        if expected is not None and start != expected:
            raise ChunkGap(path, start, expected)
        last_chunk = i == len(files) - 1
        with open(path, "rb") as f:
            data = f.read()
        chunk = chunks.add(start)
        pos, size = 0, len(data)
        view = memoryview(data)
        unpack_type = U32.unpack_from
        unpack_append = APPEND_HEAD.unpack_from
        unpack_crc = CRC.unpack_from
        crc32 = zlib.crc32
        while pos < size:
            try:
                if pos + 4 > size:
                    raise Incomplete(f"record needs {pos + 4 - size} more bytes")
                if unpack_type(data, pos)[0] == APPEND and pos > 0:
                    if pos + APPEND_OVERHEAD > size:
                        raise Incomplete(f"record needs {pos + APPEND_OVERHEAD - size} more bytes")
                    _, gid, term, index, n = unpack_append(data, pos)
                    end = pos + APPEND_OVERHEAD + n
                    if end > size:
                        raise Incomplete(f"record needs {end - size} more bytes")
                    if unpack_crc(data, end - 8)[0] != crc32(view[pos:end - 8]):
                        raise BadRecord("crc32 checksum mismatch in an append")
                    group = groups.get(gid)
                    if group is None:
                        raise CorruptedLog(path, pos, f"append for group {gid}, which does not exist here")
                    if len(group.index) and index != group.index.next_index():
                        raise CorruptedLog(path, pos, f"append of index {index} to group {gid}, "
                                                      f"which expects {group.index.next_index()}")
                    group.apply_append((term, index), start + pos, n, chunks)
                else:
                    rec, end = codec.decode(data, pos)
                    if (pos == 0) != (rec.type == codec.CHECKPOINT):
                        raise CorruptedLog(path, pos, "a chunk must open with a checkpoint, and only there")
                    if rec.type == codec.CHECKPOINT:
                        _apply_checkpoint(rec, groups, path, start, i == 0)
                    else:
                        _replay_record(rec, groups, chunks, path, pos, start + end)
            except (Incomplete, BadRecord) as exc:
                torn = codec.is_torn_tail(data, pos, exc)
                if not (last_chunk and torn):
                    raise CorruptedLog(path, pos, str(exc)) from None
                if not truncate_incomplete_record:
                    raise CorruptedLog(path, pos, f"{exc} (incomplete last record; "
                                                  "truncate_incomplete_record is off)") from None
                log.warning("%s: cutting torn tail at offset %d (%d bytes): %s",
                            path, pos, size - pos, exc)
                cut = (path, size, pos)
                size = pos
                break
            chunk.records += 1
            records += 1
            pos = end
        chunk.end = start + size
        chunk.closed_at = 0
        expected = chunk.end
        del view
    if cut:
        _cut_file(*cut)
    if files and chunks.chunks[-1].records == 0:
        # A last chunk holding nothing (created, then the crash): drop it whole.
        os.unlink(files[-1][1])
        fsync_dir(data_dir)
        chunks.drop_newest()
    # What was read may still sit only in the page cache (the crash came
    # before an fsync): make it durable before anything is built on it.
    for start, path in files:
        if os.path.exists(path):
            _fsync_path(path)
    end = expected if expected is not None else 0
    for gid, group in groups.items():
        if len(group.index) == 0:
            group.index.first = next_index(group.last)
    return Recovered(chunks, groups, end, cut, records)


def _cut_file(path, size, at):
    with open(path, "r+b") as f:
        f.truncate(at)
        f.flush()
        os.fsync(f.fileno())


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
