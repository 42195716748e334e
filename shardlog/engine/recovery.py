"""Rebuild a disk's groups by replaying its chunks, oldest first.

Every chunk opens with a Checkpoint of every group on the disk, so replay can
start at whatever chunk is oldest; later checkpoints must agree with what the
replay rebuilt, which catches a stream that lies. Every record is applied
with the same ``ops`` functions that applied it when it was written. A torn
last record or trailing zeros of the *last* chunk is what a crash mid-write
leaves: it is cut off (if ``truncate_incomplete_record``). What other damage
does depends on the recovery mode (see ``replay``): by default it is an error
naming the file and the offset; only ``salvage``, chosen by an operator,
skips it, and reports every range it lost.
"""

import logging
import os
import zlib
from typing import NamedTuple

from shardlog.errors import ChunkGap, CorruptedLog
from shardlog.ops import APPLY_RECORD, apply_append
from shardlog.types import next_index
from workers.naming import list_chunks
from workers.writer import fsync_dir

from . import codec
from .chunks import ChunkSet
from .codec import APPEND, APPEND_HEAD, APPEND_OVERHEAD, CRC, U32, BadRecord, Incomplete
from .group import GroupState
from .settings import RECOVERY_MODES

log = logging.getLogger(__name__)


class Recovered(NamedTuple):
    chunks: ChunkSet
    groups: dict
    #: Global offset where the stream ends (the next chunk starts here).
    end: int
    #: ``(path, original size, cut at)`` when a torn tail was cut.
    cut: tuple
    records: int
    #: ``(path, offset, length, reason)`` of damaged bytes that were cut or skipped.
    lost: list


class _Stream:
    """Where the groups' records are while the disk is read: what ``GroupState``
    needs of its disk to count live entries (the Disk takes over at open)."""

    def __init__(self):
        self.chunks = ChunkSet()
        #: Stream offset right after the record being replayed.
        self.end = 0


def _group(groups, stream, gid, path, pos, salvage):
    group = groups.get(gid)
    if group is None:
        if not salvage:
            raise CorruptedLog(path, pos, f"record for group {gid}, which does not exist here")
        log.error("%s: offset %d: group %d appears without its creation (salvage): kept", path, pos, gid)
        group = groups[gid] = GroupState(gid, stream)
    return group


def _replay_record(rec, groups, stream, path, pos, salvage):
    """Apply one non-Append record of ``path`` at ``pos``: the same ``ops`` apply as writing."""
    rtype, gid, value = rec
    if rtype == codec.GROUP_CREATE:
        if gid in groups and not salvage:
            raise CorruptedLog(path, pos, f"group {gid} created twice")
        groups.setdefault(gid, GroupState(gid, stream))
        return
    group = _group(groups, stream, gid, path, pos, salvage)
    if rtype == codec.GROUP_DROP:
        group.drop_all()
        del groups[gid]
    else:
        APPLY_RECORD[rtype](group, value)


def _apply_checkpoint(rec, groups, stream, path, start, first_chunk, salvage):
    version, chunk_offset, states = rec.value
    if chunk_offset != start:
        raise CorruptedLog(path, 0, f"checkpoint names chunk {chunk_offset}, file is chunk {start}")
    if first_chunk or salvage:
        for gid, state in states:
            if gid in groups:
                groups[gid].set_state(state)
            else:
                groups[gid] = GroupState(gid, stream, state=state)
        return
    listed = dict(states)
    if listed.keys() != groups.keys():
        raise CorruptedLog(path, 0, "checkpoint lists other groups than the chunks before it hold")
    for gid, state in listed.items():
        if groups[gid].state() != state:
            raise CorruptedLog(path, 0, f"checkpoint state of group {gid} disagrees with replay: "
                                        f"{state} != {groups[gid].state()}")


def resync(data, start):
    """The first offset from ``start`` where a whole, valid record begins (or the end)."""
    for pos in range(start, len(data) - 3):
        if data[pos] == 0 and data[pos + 1] == 0 and data[pos + 2] == 0 and data[pos + 3] in TYPE_CODES:
            try:
                codec.decode(data, pos)
            except (Incomplete, BadRecord):
                continue
            return pos
    return len(data)


TYPE_CODES = frozenset(codec.TYPE_NAMES)


def replay(data_dir, truncate_incomplete_record=True, mode="tolerate-tail"):
    """Read every chunk of ``data_dir`` and rebuild its groups.

    ``mode`` says what to do with damage. ``tolerate-tail`` (the default,
    raft-engine's choice): damage in the newest chunk is what a crash leaves
    of writes that were never acknowledged, so the chunk is cut there; damage
    in an older chunk is an error (the writer makes a chunk durable before it
    begins the next, so older chunks cannot be torn). ``strict``: only a
    record cut short or a tail of zeros is cut (raft-log's rule); anything else
    is an error. ``salvage``: damaged bytes and records that no longer fit
    are skipped, each reported in ``Recovered.lost``: a last resort that
    loses data, for an operator to choose.
    """
    if mode not in RECOVERY_MODES:
        raise ValueError(f"recovery mode must be one of {', '.join(RECOVERY_MODES)}, not {mode!r}")
    files, ignored = list_chunks(data_dir)
    for name in ignored:
        log.warning("%s: ignoring %s: not a chunk file name", data_dir, name)
    stream = _Stream()
    chunks = stream.chunks
    groups = {}
    expected = None
    cut = ()
    records = 0
    lost = []
    salvage = mode == "salvage"
    for i, (start, path) in enumerate(files):
        if expected is not None and start != expected:
            if mode != "salvage":
                raise ChunkGap(path, start, expected)
            lost.append((path, expected, start - expected, "gap between chunks"))
            log.error("%s: %d bytes missing before this chunk (salvage)", path, start - expected)
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
                    group = _group(groups, stream, gid, path, pos, salvage)
                    if len(group.index) and index != group.index.next_index():
                        raise CorruptedLog(path, pos, f"append of index {index} to group {gid}, "
                                                      f"which expects {group.index.next_index()}")
                    group.index.append(index, term, start + pos, n)  # where: only replay knows
                    chunk.live += 1
                    apply_append(group, (((term, index), None),))
                else:
                    rec, end = codec.decode(data, pos)
                    if (pos == 0) != (rec.type == codec.CHECKPOINT):
                        raise CorruptedLog(path, pos, "a chunk must open with a checkpoint, and only there")
                    if rec.type == codec.CHECKPOINT:
                        _apply_checkpoint(rec, groups, stream, path, start, i == 0, salvage)
                    else:
                        stream.end = start + end
                        _replay_record(rec, groups, stream, path, pos, salvage)
            except (Incomplete, BadRecord, CorruptedLog) as exc:
                reason = exc.reason if isinstance(exc, CorruptedLog) else str(exc)
                if mode == "salvage":
                    end = resync(data, pos + 1)
                    lost.append((path, pos, end - pos, reason))
                    log.error("%s: offset %d: skipping %d damaged bytes (salvage): %s",
                              path, pos, end - pos, reason)
                    pos = end
                    continue
                if isinstance(exc, CorruptedLog):
                    raise
                torn = codec.is_torn_tail(data, pos, exc)
                if not (last_chunk and (torn or mode == "tolerate-tail")):
                    raise CorruptedLog(path, pos, reason) from None
                if not truncate_incomplete_record:
                    raise CorruptedLog(path, pos, f"{reason} (damaged last record; "
                                                  "truncate_incomplete_record is off)") from None
                log.warning("%s: cutting %s tail at offset %d (%d bytes): %s", path,
                            "torn" if torn else "damaged", pos, size - pos, reason)
                if not torn:
                    lost.append((path, pos, size - pos, reason))
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
        reason = _disagreement(group)
        if reason is not None:
            if not salvage:
                raise CorruptedLog(data_dir, end, f"group {gid}: {reason}")
            held = group.index
            log.error("%s: group %d: %s (salvage): last set to the last entry held", data_dir, gid, reason)
            group.last = (held.terms[-1], held.last_index) if len(held) else group.purged
    return Recovered(chunks, groups, end, cut, records, lost)


def _disagreement(group):
    """What is wrong when a replayed group's state disagrees with the entries it holds
    (the writer never leaves it so; appends would be misfiled on top of it), or None."""
    held = group.index
    if len(held):
        last_held = (held.terms[-1], held.last_index)
        if group.last != last_held:
            return f"last {group.last} but the last entry held is {last_held}"
        if group.purged is not None and not group.purged < (held.terms[held.head], held.first):
            return f"purged {group.purged} is not below the first entry held"
    elif group.last != group.purged:
        return f"last {group.last} but no entry is held above purged {group.purged}"
    return None


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
