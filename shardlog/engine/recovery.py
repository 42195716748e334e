"""Rebuild a disk's groups from its chunks, oldest first.

A sealed chunk ends with a footer (codec.encode_footer): each group it
touched, with its state and where its entries are. Opening reads the footers
of the sealed chunks and replays record by record only the newest chunk, the
one still being written; ``footers=False`` replays every record instead, and
checks each footer against what it rebuilt. Every record is applied with the
same ``ops`` functions that applied it when it was written.

What must be there is known, not guessed: the data directory's marks
(workers/marks.py) say where the stream begins and how far it was durable,
and each chunk names its own offset. A missing chunk, or a stream cut below
what was synced, is ``ChunkMissing``. A torn last record of the *newest*
chunk is what a crash mid-write leaves: it is cut off (if
``truncate_incomplete_record``). Zeros after its last record are room
preallocated and not used yet (workers/writer.py), and stay; zeros after a
footer are a cut the writer did not get to make before the next chunk
began, and it is made here. What other damage does depends on the mode
(see ``replay``): by default it is an error naming the file and the offset;
only ``salvage``, chosen by an operator, skips it, and reports every range
it lost.
"""

import logging
import os
from array import array
from typing import NamedTuple

from shardlog.errors import ChunkGap, ChunkMissing, CorruptedLog
from shardlog.ops import APPLY_RECORD, apply_append
from shardlog.types import LogState, next_index
from shardlog.workers.files import OS_FILES
from shardlog.workers.marks import MarksWriter, read_marks
from shardlog.workers.naming import PREPARED_FILE, chunk_file_name, chunk_path, list_chunks

from . import codec
from .chunks import ChunkSet
from .codec import (
    APPEND,
    APPEND_HEAD,
    APPEND_OVERHEAD,
    CRC,
    EXISTS,
    HAS_COMMITTED,
    HAS_LAST,
    HAS_PURGED,
    HAS_USER_DATA,
    HAS_VOTE,
    RELOCATE,
    U32,
    BadRecord,
    Incomplete,
)
from .group import GroupState
from .index import interleave, term_runs
from .settings import RECOVERY_MODES

log = logging.getLogger(__name__)

NO_STATE = LogState()


class Recovered(NamedTuple):
    chunks: ChunkSet
    groups: dict
    #: Global offset where the stream ends (writing goes on here).
    end: int
    #: ``(path, original size, cut at)`` when a torn tail was cut.
    cut: tuple
    records: int
    #: ``(path, offset, length, reason)`` of damaged bytes that were cut or skipped.
    lost: list
    #: Chunks whose footer was read instead of their records.
    footers: int = 0


class _Stream:
    """Where the groups' records are while the disk is read: what ``GroupState``
    needs of its disk to count live entries (the Disk takes over at open)."""

    def __init__(self):
        self.chunks = ChunkSet()
        #: Stream offset right after the record being replayed.
        self.end = 0


class _Replay:
    """The groups of one disk as the chunks read so far leave them."""

    def __init__(self, salvage):
        self.stream = _Stream()
        self.groups = {}
        #: Groups seen only through records that do not give their whole state
        #: (their base chunk was deleted after a later one was read); a State
        #: record, a creation or a footer completes them.
        self.partial = {}
        self.salvage = salvage
        self.records = 0
        #: gid -> the Relocate records of a run not yet whole (see relocate_record).
        self.runs = {}
        #: Equal log ids and votes of different groups share one tuple (at 1M
        #: groups, a tuple per field per group is most of their memory).
        self.shared_ids = {}
        #: gid -> (first index, terms, offsets, sizes) of relocated entries whose
        #: originals are gone, waiting for the run to reach the entries held.
        self.prefixes = {}

    def group(self, gid, path, pos):
        group = self.groups.get(gid)
        if group is None:
            group = self.groups[gid] = GroupState(gid, self.stream)
            self.partial[gid] = (path, pos)
        self.stream.chunks.touch(group)
        return group

    def record(self, rec, path, pos):
        """Apply one record that is not an Append."""
        rtype, gid, value = rec
        if gid in self.runs:
            raise CorruptedLog(path, pos, f"a record of group {gid} inside one of its relocation runs")
        if rtype == codec.GROUP_CREATE:
            if gid in self.groups and gid not in self.partial:
                raise CorruptedLog(path, pos, f"group {gid} created twice")
            self.partial.pop(gid, None)
            self.groups[gid] = GroupState(gid, self.stream)
            self.stream.chunks.touch(self.groups[gid])
            return
        group = self.group(gid, path, pos)
        if rtype == codec.GROUP_DROP:
            group.drop_all()
            del self.groups[gid]
            self.partial.pop(gid, None)
            self.stream.chunks.leave_base(group, self.stream.end)
        else:
            if rtype == codec.STATE:  # the whole state: its base may go
                self.partial.pop(gid, None)
                self.stream.chunks.leave_base(group, self.stream.end)
            APPLY_RECORD[rtype](group, value)

    def relocate_record(self, gid, term, index, offset, size, path, pos):
        """A Relocate record. A run (all of a group's live entries, in order, in
        one write) takes effect only whole: a crash may keep part of it, and
        its originals are then all still there (their chunks go only once the
        whole run is durable). So the run waits here until it reaches the
        group's last entry; one cut short is dropped at the end of replay."""
        group = self.groups.get(gid)
        run = self.runs.setdefault(gid, [])
        run.append((term, index, offset, size, path, pos))
        idx = None if group is None else group.index
        if idx is None or not len(idx) or index >= idx.last_index:
            # The run is whole (with no original held, nothing else can be).
            del self.runs[gid]
            for term, index, offset, size, path, pos in run:
                self.relocate(gid, term, index, offset, size, path, pos)

    def relocate(self, gid, term, index, offset, size, path, pos):
        """A Relocate record of a whole run: the entry's new place.

        A relocation copies all of a group's live entries, in order, and the
        chunks of the copied records go only once the whole run is durable.
        So when an entry's original is gone (relocated before, its chunk
        deleted since), this is its only copy: it is indexed in turn, in front
        of the entries still held once the run reaches them.
        """
        group = self.group(gid, path, pos)
        idx = group.index
        chunks = self.stream.chunks
        prefix = self.prefixes.get(gid)
        if prefix is not None and index == idx.first and index == prefix[0] + len(prefix[1]):
            first, terms, offsets, sizes = self.prefixes.pop(gid)
            head, n = idx.head, idx.positions()
            idx.reset(first, terms + idx.term_column(head, n), offsets + idx.offset_column(head, n),
                      sizes + idx.size_column(head, n))
        at = idx.position(index)
        if at is None and (not len(idx) or index == idx.next_index()):
            idx.append(index, term, offset, size)
        elif at is None and index < idx.first and (prefix is None or index == prefix[0] + len(prefix[1])):
            if prefix is None:
                prefix = self.prefixes[gid] = (index, array("Q"), array("Q"), array("Q"))
            prefix[1].append(term)
            prefix[2].append(offset)
            prefix[3].append(size)
        elif at is None or idx.term_at(index) != term:
            raise CorruptedLog(path, pos, f"relocation of ({term}, {index}) of group {gid}, "
                                          f"which holds no such entry")
        else:
            chunks.release(idx, at, at + 1, self.stream.end)
            idx.move(at, array("Q", (offset,)))
            chunks.open.live += 1
            return
        chunks.live_bytes += APPEND_OVERHEAD + size
        chunks.open.live += 1

    def footer(self, footer, chunk, path, pos, check):
        """Take the chunk's footer: its groups' states and entries. With ``check``
        (the chunk's records were replayed), the footer must agree with them."""
        if footer.chunk_offset != chunk.start:
            raise CorruptedLog(path, pos, f"footer names chunk {footer.chunk_offset}, file is chunk {chunk.start}")
        if check:
            groups = footer.groups()
            if [g.gid for g in chunk.touched] != [g.gid for g in groups]:
                raise CorruptedLog(path, pos, "footer lists other groups than the chunk's records touch")
            at = 0
            for fg, group in zip(groups, chunk.touched):
                n = fg.run_count
                self._check(fg, group, chunk, path, pos, footer.terms[at:at + n], footer.offsets[at:at + n])
                at += n
            return
        self._restore(footer, chunk, path, pos)

    def _restore(self, footer, chunk, path, pos):
        """Opening by a footer: the loop runs once per group on the disk at 1M
        groups, so it reads the columns directly and shares equal log ids."""
        groups, stream, touched = self.groups, self.stream, chunk.touched
        chunks = stream.chunks
        flags, pairs, runs, user_data = footer.flags, footer.pairs, footer.runs, footer.user_data
        terms, offsets, sizes = footer.terms, footer.offsets, footer.sizes
        places = interleave(offsets, sizes) if len(offsets) else None
        shared = self.shared_ids.setdefault
        at = j = 0
        for i, gid in enumerate(footer.gids):
            bits = flags[i]
            group = groups.get(gid)
            if not bits & EXISTS:
                if group is not None:
                    touched.append(group)
                    group.drop_all()
                    del groups[gid]
                continue
            # Unrolled: this runs once per group.
            vote = last = committed = purged = None
            if bits & HAS_VOTE:
                vote = (pairs[j], pairs[j + 1])
                vote = shared(vote, vote)
                j += 2
            if bits & HAS_LAST:
                last = (pairs[j], pairs[j + 1])
                last = shared(last, last)
                j += 2
            if bits & HAS_COMMITTED:
                committed = (pairs[j], pairs[j + 1])
                committed = shared(committed, committed)
                j += 2
            if bits & HAS_PURGED:
                purged = (pairs[j], pairs[j + 1])
                purged = shared(purged, purged)
                j += 2
            r = 3 * i
            kept_end, run_first, n = runs[r], runs[r + 1], runs[r + 2]
            if group is None:
                if n:
                    run = places[2 * at:2 * (at + n)]
                    group = groups[gid] = GroupState(gid, stream, NO_STATE, run_first,
                                                     terms[at] if n == 1 else term_runs(terms[at:at + n]), run)
                    chunk.live += n
                    chunks.live_bytes += (sizes[at] if n == 1 else sum(run[1::2])) + n * APPEND_OVERHEAD
                else:
                    group = groups[gid] = GroupState(gid, stream)
            elif not group.restore(kept_end, purged, run_first, terms[at:at + n], offsets[at:at + n],
                                   sizes[at:at + n], chunk):
                raise CorruptedLog(path, pos, f"footer run of group {gid} from {run_first} "
                                              f"does not follow index {group.index.next_index() - 1}")
            touched.append(group)
            group.vote, group.last, group.committed, group.purged = vote, last, committed, purged
            group.user_data = user_data.get(i) if bits & HAS_USER_DATA else None
            at += n

    def _check(self, fg, group, chunk, path, pos, terms, offsets):
        held = self.groups.get(fg.gid) is group
        if fg.state is None:
            if held:
                raise CorruptedLog(path, pos, f"footer says group {fg.gid} was dropped; replay holds it")
            return
        if not held:
            raise CorruptedLog(path, pos, f"footer holds group {fg.gid}, which replay dropped")
        if self.partial.pop(fg.gid, None) is not None:
            group.set_state(fg.state)  # its whole state: the chunks before were deleted
        elif group.state() != fg.state:
            raise CorruptedLog(path, pos, f"footer state of group {fg.gid} disagrees with replay: "
                                          f"{fg.state} != {group.state()}")
        idx = group.index
        n = idx.positions()
        here = [(term, offset) for term, offset in zip(idx.term_column(idx.head, n), idx.offset_column(idx.head, n))
                if offset >= chunk.start]
        if here != list(zip(terms, offsets)):
            raise CorruptedLog(path, pos, f"footer entries of group {fg.gid} disagree with replay")


def _apply_checkpoint(rec, replay, path, start, first_chunk, salvage):
    """The Checkpoint opening a chunk of format 1: the state of every group."""
    version, chunk_offset, states = rec.value
    groups = replay.groups
    if chunk_offset != start:
        raise CorruptedLog(path, 0, f"checkpoint names chunk {chunk_offset}, file is chunk {start}")
    if first_chunk or salvage:
        for gid, state in states:
            if gid in groups:
                groups[gid].set_state(state)
            else:
                groups[gid] = GroupState(gid, replay.stream, state=state)
        return
    listed = dict(states)
    if listed.keys() != groups.keys():
        raise CorruptedLog(path, 0, "checkpoint lists other groups than the chunks before it hold")
    for gid, state in listed.items():
        if groups[gid].state() != state:
            raise CorruptedLog(path, 0, f"checkpoint state of group {gid} disagrees with replay: "
                                        f"{state} != {groups[gid].state()}")


def resync(data, start, stop=None):
    """The first offset from ``start`` where a whole, valid record begins (or the
    end). None begins in the room at the end (``codec.room_start``): not looked
    at, byte by byte (a preallocated chunk's room is megabytes of zeros, and
    four zero bytes are a record type)."""
    stop = codec.room_start(data) if stop is None else stop
    for pos in range(start, min(stop, len(data) - 3)):
        if data[pos] == 0 and data[pos + 1] == 0 and data[pos + 2] == 0 and data[pos + 3] in TYPE_CODES:
            try:
                codec.decode(data, pos)
            except (Incomplete, BadRecord):
                continue
            return pos
    return len(data)


TYPE_CODES = frozenset(codec.TYPE_NAMES)


def _read_footer(files, fd, size):
    """The footer of an open chunk file, or None if it does not end with a valid one."""
    if size < 16:
        return None
    tail = files.pread(fd, 16, size - 16)
    at = codec.footer_start(tail, size)
    if at is None:
        return None
    data = files.pread(fd, size - at, at)
    try:
        footer, end = codec.decode_footer(data, 0)
    except (Incomplete, BadRecord):
        return None
    return footer if end == len(data) else None


def _check_marks(data_dir, files, marks, salvage, fs):
    """The chunk files that form the stream; leftovers of an interrupted deletion go.

    Raises ChunkMissing when the oldest chunk the marks name is gone.
    """
    if marks is None:
        return files
    oldest = marks[0]
    leftovers = [(start, path) for start, path in files if start < oldest]
    for start, path in leftovers:
        log.warning("%s: removing %s: below the stream's start %d (a deletion was interrupted)",
                    data_dir, os.path.basename(path), oldest)
        fs.unlink(path)
    if leftovers:
        fs.sync_dir(data_dir)
    files = files[len(leftovers):]
    if files and files[0][0] != oldest:
        message = (f"the oldest chunk {chunk_file_name(oldest)} is missing "
                   f"(the oldest present starts at {files[0][0]})")
        if not salvage:
            raise ChunkMissing(os.path.join(data_dir, chunk_file_name(oldest)), oldest, message)
        log.error("%s: %s (salvage): going on without it", data_dir, message)
    return files


def prepared_chunk(data_dir, fs=OS_FILES):
    """The offset of the chunk the prepared file holds (its header names it),
    or None: no prepared file, or one that holds zeros (not used yet)."""
    path = os.path.join(data_dir, PREPARED_FILE)
    try:
        fd = fs.open(path, "r")
    except FileNotFoundError:  # (none, or renamed meanwhile: dump reads live directories)
        return None
    try:
        return codec.chunk_header_offset(fs.pread(fd, codec.CHUNK_HEADER_SIZE, 0))
    finally:
        fs.close(fd)


def _adopt_prepared(data_dir, fs):
    """Give the chunk file made ahead (naming.PREPARED_FILE) its chunk's name
    when records went into it.

    The writer renames that file into place when a chunk begins and does not
    make the rename durable (workers/writer.py: a rotation costs one fsync
    more than a batch, not two): after a power loss the new chunk may be
    found under the prepared name, its header naming the chunk. A prepared
    file not used yet holds zeros; it stays, for the writer to delete."""
    start = prepared_chunk(data_dir, fs)
    if start is None:
        return
    path, target = os.path.join(data_dir, PREPARED_FILE), chunk_path(data_dir, start)
    if fs.exists(target):  # (the rename is atomic: never both, short of another program's doing)
        log.error("%s: %s holds chunk %s, which exists too: left as it is", data_dir, PREPARED_FILE,
                  chunk_file_name(start))
        return
    log.warning("%s: %s holds chunk %s (its rename had not reached the disk): renaming it", data_dir,
                PREPARED_FILE, chunk_file_name(start))
    fs.rename(path, target)
    fs.sync_dir(data_dir)


def replay(data_dir, truncate_incomplete_record=True, mode="tolerate-tail", footers=True, fs=OS_FILES):
    """Read the chunks of ``data_dir`` and rebuild its groups.

    ``mode`` says what to do with damage. ``tolerate-tail`` (the default,
    raft-engine's choice): damage in the newest chunk that nothing valid
    follows is what a crash leaves of writes that were never acknowledged,
    so the chunk is cut there; damage elsewhere is an error (the writer makes
    a chunk durable before it begins the next, so older chunks cannot be
    torn). ``strict``: only a record cut short or a tail of zeros is cut
    (raft-log's rule); anything else is an error. ``salvage``: damaged bytes
    and records that no longer fit are skipped, each reported in
    ``Recovered.lost``: a last resort that loses data, for an operator to
    choose. ``footers=False`` replays every record of every chunk. ``fs`` does
    the file operations (workers/files.py).
    """
    if mode not in RECOVERY_MODES:
        raise ValueError(f"recovery mode must be one of {', '.join(RECOVERY_MODES)}, not {mode!r}")
    salvage = mode == "salvage"
    footers = footers and not salvage  # salvage looks at every record
    _adopt_prepared(data_dir, fs)
    files, ignored = list_chunks(data_dir, fs)
    for name in ignored:
        log.warning("%s: ignoring %s: not a chunk file name", data_dir, name)
    marks = read_marks(data_dir, fs)
    files = _check_marks(data_dir, files, marks, salvage, fs)
    if files and fs.size(files[-1][1]) < codec.CHUNK_HEADER_SIZE and (
            marks is None or marks[1] <= files[-1][0]):
        # A newest chunk created just before a crash, with nothing whole in it:
        # it goes, and the chunk before it is the newest again.
        log.warning("%s: removing %s: created, but nothing was written to it", data_dir,
                    os.path.basename(files[-1][1]))
        fs.unlink(files[-1][1])
        fs.sync_dir(data_dir)
        files = files[:-1]
    state = _Replay(salvage)
    chunks = state.stream.chunks
    expected = None
    cut = ()
    #: ``(path, size)`` of sealed chunks with room preallocated after their footer.
    trims = []
    lost = []
    read_footers = 0
    last_format = None
    for i, (start, path) in enumerate(files):
        if expected is not None and start != expected:
            if not salvage:
                raise ChunkGap(path, start, expected)
            lost.append((path, expected, start - expected, "gap between chunks"))
            log.error("%s: %d bytes missing before this chunk (salvage)", path, start - expected)
        last_chunk = i == len(files) - 1
        chunk = chunks.add(start)
        fd = fs.open(path, "r")
        try:
            size = fs.fsize(fd)
            # Not the newest chunk's: its last bytes may be a client's payload (it
            # is replayed; after a clean close it holds only a header).
            footer = _read_footer(fs, fd, size) if footers and not last_chunk else None
            if footer is not None:
                state.stream.end = start + size
                state.footer(footer, chunk, path, size, check=False)
                chunk.records = 2  # at least its header and footer (it is not empty)
                chunk.end = start + size
                chunks.seal(chunk, state.groups)
                expected = chunk.end
                read_footers += 1
                last_format = codec.FORMAT_VERSION
                continue
            data = fs.pread(fd, size, 0)
        finally:
            fs.close(fd)
        size, sealed, last_format, chunk_cut = _replay_chunk(
            state, chunk, data, start, path, last_chunk, mode, truncate_incomplete_record, lost,
            None if marks is None else marks[1])
        if chunk_cut:
            cut = chunk_cut
        if sealed and size < len(data):
            log.info("%s: cutting the %d bytes preallocated after its footer", path, len(data) - size)
            trims.append((path, size))
        expected = start + size
        if sealed or last_format != codec.FORMAT_VERSION:
            chunk.end = expected
            if last_format != codec.FORMAT_VERSION:  # format 1: every group's state is in it
                chunk.touched = list(state.groups.values())
            chunks.seal(chunk, state.groups)
        elif not last_chunk:
            message = "a chunk that is not the newest has no footer"
            if not salvage:
                raise CorruptedLog(path, size, message)
            log.error("%s: %s (salvage)", path, message)
            chunk.end = expected
            chunks.seal(chunk, state.groups)
    if cut:
        fs.truncate(cut[0], cut[2])
    for path, at in trims:
        fs.truncate(path, at)
    if files and chunks.chunks[-1].records == 0:
        # A last chunk holding nothing (created, then the crash): drop it whole.
        fs.unlink(files[-1][1])
        fs.sync_dir(data_dir)
        chunks.drop_newest()
        files = files[:-1]
        expected = chunks.chunks[-1].end if len(chunks) else None
    end = expected if expected is not None else (marks[0] if marks else 0)
    if marks is not None and end < marks[1]:
        where = files[-1][1] if files else os.path.join(data_dir, chunk_file_name(end))
        message = (f"the stream ends at {end} but {marks[1]} bytes were durable: "
                   "the newest chunk is missing or was cut")
        if not salvage:
            raise ChunkMissing(where, end, message)
        log.error("%s: %s (salvage)", data_dir, message)
    elif marks is None and last_format == codec.FORMAT_VERSION:
        message = f"chunks of format {codec.FORMAT_VERSION} but no marks file: it was deleted"
        if not salvage:
            raise ChunkMissing(os.path.join(data_dir, "MARKS"), 0, message)
        log.error("%s: %s (salvage)", data_dir, message)
    # What was read of the newest chunk may still sit only in the page cache
    # (the crash came before an fsync): make it durable before anything is
    # built on it. The writer made the older chunks durable before it began
    # the next one.
    if files and fs.exists(files[-1][1]):
        fd = fs.open(files[-1][1], "r")
        try:
            fs.fsync(fd)
        finally:
            fs.close(fd)
    for gid, run in state.runs.items():  # cut short by a crash: the originals hold
        log.warning("%s: group %d: dropping a relocation run cut short at its %d entries", data_dir, gid, len(run))
    for gid in state.prefixes:
        message = f"group {gid}: a relocation run stops before the entries it moves"
        if not salvage:
            raise CorruptedLog(data_dir, end, message)
        log.error("%s: %s (salvage)", data_dir, message)
    for gid, (path, pos) in list(state.partial.items()):
        message = f"group {gid} has records but no state: the chunk holding it is missing"
        if not salvage:
            raise ChunkMissing(path, pos, message)
        log.error("%s: offset %d: %s (salvage): kept as replayed", path, pos, message)
    damaged_newest = salvage and files and any(path == files[-1][1] for path, *_ in lost)
    if len(chunks) and chunks.chunks[-1].end is None and last_format == codec.FORMAT_VERSION \
            and not damaged_newest:
        pass  # the newest chunk is written on
    elif len(chunks):
        chunks.open = None  # sealed, or of format 1: the disk starts a new chunk
    for gid, group in state.groups.items():
        if len(group.places) >> 1 == group.head:  # empty (the loop of every group: no calls)
            group.first = next_index(group.last)
        reason = _disagreement(group)
        if reason is not None:
            if not salvage:
                raise CorruptedLog(data_dir, end, f"group {gid}: {reason}")
            held = group.index
            log.error("%s: group %d: %s (salvage): last set to the last entry held", data_dir, gid, reason)
            group.last = (held.last_term(), held.last_index) if len(held) else group.purged
    if salvage:
        # What was salvaged is the stream now: the marks say so, or the next
        # open would refuse what this one accepted.
        oldest = chunks.chunks[0].start if len(chunks) else end
        marks_writer = MarksWriter(data_dir, oldest, end, fs)
        marks_writer.set_oldest(oldest)
        marks_writer.close()
    return Recovered(chunks, state.groups, end, cut, state.records, lost, read_footers)


def _replay_chunk(state, chunk, data, start, path, last_chunk, mode, truncate_incomplete_record, lost,
                  synced_mark):
    """Apply every record of one chunk. Returns ``(size kept, sealed, format, cut)``."""
    salvage = mode == "salvage"
    stream = state.stream
    pos, size = 0, len(data)
    view = memoryview(data)
    unpack_type = U32.unpack_from
    unpack_append = APPEND_HEAD.unpack_from
    unpack_crc = CRC.unpack_from
    crc32 = codec.crc32
    version = codec.FORMAT_VERSION
    sealed = False
    cut = ()
    while pos < size:
        try:
            if sealed:
                if codec.is_room(data, pos):  # preallocated: cut by the caller
                    size = pos
                    break
                raise CorruptedLog(path, pos, "records after the chunk's footer")
            if pos + 4 > size:
                raise Incomplete(f"record needs {pos + 4 - size} more bytes")
            rtype = unpack_type(data, pos)[0]
            if (rtype == APPEND or rtype == RELOCATE) and pos > 0:
                if pos + APPEND_OVERHEAD > size:
                    raise Incomplete(f"record needs {pos + APPEND_OVERHEAD - size} more bytes")
                _, gid, term, index, n = unpack_append(data, pos)
                end = pos + APPEND_OVERHEAD + n
                if end > size:
                    raise Incomplete(f"record needs {end - size} more bytes")
                if unpack_crc(data, end - 8)[0] != crc32(view[pos:end - 8]):
                    raise BadRecord("crc32 checksum mismatch in an append")
                stream.end = start + end
                if rtype == RELOCATE:
                    state.relocate_record(gid, term, index, start + pos, n, path, pos)
                else:
                    if gid in state.runs:
                        raise CorruptedLog(path, pos, f"an append of group {gid} inside one of its "
                                                      "relocation runs")
                    group = state.group(gid, path, pos)
                    idx = group.index
                    if len(idx) and index != idx.next_index():
                        raise CorruptedLog(path, pos, f"append of index {index} to group {gid}, "
                                                      f"which expects {idx.next_index()}")
                    idx.append(index, term, start + pos, n)  # where: only replay knows
                    chunk.live += 1
                    stream.chunks.live_bytes += APPEND_OVERHEAD + n
                    apply_append(group, (((term, index), None),))
            else:
                rec, end = codec.decode(data, pos)
                opening = rec.type in (codec.CHECKPOINT, codec.CHUNK_HEADER)
                if (pos == 0) != opening:
                    raise CorruptedLog(path, pos, "a chunk must open with a header, and only there")
                stream.end = start + end
                if rec.type == codec.CHUNK_HEADER:
                    if rec.value[1] != start:
                        raise CorruptedLog(path, pos, f"header names chunk {rec.value[1]}, file is chunk {start}")
                elif rec.type == codec.CHECKPOINT:
                    version = codec.CHECKPOINT_FORMAT_VERSION
                    _apply_checkpoint(rec, state, path, start, not stream.chunks.chunks[0].records, salvage)
                elif rec.type == codec.FOOTER:
                    state.footer(rec.value, chunk, path, pos, check=True)
                    sealed = True
                else:
                    state.record(rec, path, pos)
        except (Incomplete, BadRecord, CorruptedLog) as exc:
            reason = exc.reason if isinstance(exc, CorruptedLog) else str(exc)
            if salvage:
                end = resync(data, pos + 1)
                lost.append((path, pos, end - pos, reason))
                log.error("%s: offset %d: skipping %d damaged bytes (salvage): %s",
                          path, pos, end - pos, reason)
                pos = end
                continue
            if isinstance(exc, CorruptedLog):
                raise
            room = codec.room_start(data)
            torn = codec.is_torn_tail(data, pos, exc)
            follow = size if torn or not last_chunk else resync(data, pos + 1, room)  # (older: never torn)
            if not torn and follow < size and codec.page_not_reached(data, pos, follow):
                # The pages of writes not yet fsynced reach a preallocated
                # file in any order: one they did not reach reads as zeros,
                # with records they wrote after it. Everything from it on
                # was written after the last fsync (which makes every write
                # before it durable): a torn write, not damage.
                torn = True
            if not (last_chunk and (torn or mode == "tolerate-tail")):
                raise CorruptedLog(path, pos, reason) from None
            if synced_mark is not None and start + pos < synced_mark:
                raise ChunkMissing(path, pos, f"{reason}, below the {synced_mark - start} bytes of "
                                              "this chunk that were durable") from None
            if pos >= room:  # not used yet: the writer goes on from here
                size = pos
                break
            if not torn and follow < size:
                raise CorruptedLog(path, pos, f"{reason}, and valid records follow: damage, "
                                              "not a torn write") from None
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
        state.records += 1
        pos = end
    del view
    return size, sealed, version, cut


def _disagreement(group):
    """What is wrong when a replayed group's state disagrees with the entries it holds
    (the writer never leaves it so; appends would be misfiled on top of it), or None.
    It runs once per group at open: attributes first, methods only when needed."""
    held = (len(group.places) >> 1) - group.head
    last, purged = group.last, group.purged
    if held:
        terms = group.terms
        last_held = (terms if terms.__class__ is int else terms[-1], group.first + held - 1)
        if last != last_held:
            return f"last {last} but the last entry held is {last_held}"
        if purged is not None and not purged < (group.first_term(), group.first):
            return f"purged {purged} is not below the first entry held"
    elif last != purged:
        return f"last {last} but no entry is held above purged {purged}"
    return None
