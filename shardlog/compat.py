"""Moving logs between shardlog and the Rust crate raft-log.

raft-log keeps one log per directory, in chunk files of records framed like
ours but without a group id. ``read_raft_log`` reads such a directory without
touching it; ``import_raft_log`` loads one as a group; ``export_raft_log``
writes a group back out the way raft-log itself would have written the same
operations: each chunk opened by a State record, closed once it holds
``chunk_max_records`` records or ``chunk_max_size`` bytes, and closed chunks
dropped on a purge when their last log id at closing is <= the purge point.
"""

import os

from . import codec
from .errors import ChunkGap, CorruptedLog, GroupExists, InvalidArgument
from .group import _above
from .naming import LOCK_FILE, chunk_file_name, list_chunks
from .types import LogState, next_index
from workers.writer import fsync_dir

#: raft-log's defaults (Config::chunk_max_records, Config::chunk_max_size).
RAFT_LOG_CHUNK_MAX_RECORDS = 1024 * 1024
RAFT_LOG_CHUNK_MAX_SIZE = 1024 * 1024 * 1024


class _RaftLogReplay:
    """raft-log's state machine: the LogState and, if kept, the entries."""

    def __init__(self, state=LogState(), keep_entries=True):
        self.vote, self.last, self.committed, self.purged, self.user_data = state
        self.entries = {} if keep_entries else None

    def state(self):
        return LogState(self.vote, self.last, self.committed, self.purged, self.user_data)

    def apply(self, rtype, value):
        entries = self.entries
        if rtype == codec.SAVE_VOTE:
            self.vote = value
        elif rtype == codec.APPEND:
            log_id, payload = value
            if entries is not None:
                entries[log_id[1]] = (log_id, payload)
            self.last = log_id
        elif rtype == codec.COMMIT:
            self.committed = value
        elif rtype == codec.TRUNCATE_AFTER:
            if entries is not None:
                keep = next_index(value)
                for i in [i for i in entries if i >= keep]:
                    del entries[i]
            if _above(self.last, value):
                self.last = value
        elif rtype == codec.PURGE_UPTO:
            if entries is not None:
                for i in [i for i in entries if i <= value[1]]:
                    del entries[i]
            if _above(value, self.purged):
                self.purged = value
            if _above(value, self.last):
                self.last = value
        elif rtype == codec.STATE:
            self.vote, self.last, self.committed, self.purged, self.user_data = value


def read_raft_log(path):
    """``(LogState, [((term, index), payload), ...])`` of a raft-log directory.

    Nothing in ``path`` is changed: a torn last record is skipped here, not
    cut off. Damage elsewhere, or a gap between chunks, is a CorruptedLog.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InvalidArgument(f"{path} is not a directory")
    files, _ = list_chunks(path)
    replay = _RaftLogReplay()
    expected = None
    for i, (start, file_path) in enumerate(files):
        if expected is not None and start != expected:
            raise ChunkGap(file_path, start, expected)
        with open(file_path, "rb") as f:
            data = f.read()
        end = 0
        try:
            for _, rec, end in codec.iter_records(data, with_gid=False):
                replay.apply(rec.type, rec.value)
        except (codec.Incomplete, codec.BadRecord) as exc:
            if not (i == len(files) - 1 and codec.is_torn_tail(data, end, exc)):
                raise CorruptedLog(file_path, end, str(exc)) from None
        expected = start + end
    entries = [replay.entries[i] for i in sorted(replay.entries)]
    return replay.state(), entries


def import_raft_log(store, gid, path):
    """Load the raft-log directory ``path`` as the new group ``gid``; durable on return."""
    state, entries = read_raft_log(path)
    if gid in store.groups():
        raise GroupExists(f"group {gid} already exists; drop it first or choose another id")
    store._restore(gid, state, entries)
    store.group(gid).flush()
    return state, len(entries)


class _RaftLogWriter:
    """Lays records out in chunks exactly as raft-log's writer does."""

    def __init__(self, state, max_records, max_size):
        self.max_records = max_records
        self.max_size = max_size
        self.replay = _RaftLogReplay(state, keep_entries=False)
        #: ``[start offset, bytes, state when closed]`` of closed chunks still kept.
        self.closed = []
        self.start = 0
        self.buf = bytearray()
        self.records = 0
        self._open()

    def _open(self):
        self.buf += codec.encode_raft_log(codec.STATE, self.replay.state())
        self.records = 1

    def add(self, rtype, value):
        self.buf += codec.encode_raft_log(rtype, value)
        self.records += 1
        self.replay.apply(rtype, value)
        if self.records >= self.max_records or len(self.buf) >= self.max_size:
            self.closed.append((self.start, bytes(self.buf), self.replay.state()))
            self.start += len(self.buf)
            self.buf = bytearray()
            self._open()
        if rtype == codec.PURGE_UPTO:
            while self.closed and not _above(self.closed[0][2].last, value):
                del self.closed[0]

    def files(self):
        return [(start, data) for start, data, _ in self.closed] + [(self.start, bytes(self.buf))]


def export_raft_log(store, gid, path, chunk_max_records=None, chunk_max_size=None):
    """Write group ``gid`` as a raft-log directory at ``path`` (new or empty).

    Returns the list of file names written. When the group's whole history is
    still on disk, the files are byte-identical to what raft-log writes for the
    same operations with the same chunk limits.
    """
    path = os.fspath(path)
    if os.path.exists(path) and os.listdir(path):
        raise InvalidArgument(f"{path} is not empty; export needs a new or empty directory")
    initial, records = store._group_history(gid)
    writer = _RaftLogWriter(initial, chunk_max_records or RAFT_LOG_CHUNK_MAX_RECORDS,
                            chunk_max_size or RAFT_LOG_CHUNK_MAX_SIZE)
    for rtype, value in records:
        writer.add(rtype, value)
    os.makedirs(path, exist_ok=True)
    names = []
    for start, data in writer.files():
        name = chunk_file_name(start)
        _write_durably(os.path.join(path, name), data)
        names.append(name)
    _write_durably(os.path.join(path, LOCK_FILE), b"")
    fsync_dir(path)
    return names


def _write_durably(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
