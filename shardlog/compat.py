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

from shardlog.engine import codec
from shardlog.workers.naming import LOCK_FILE, chunk_file_name, list_chunks
from shardlog.workers.writer import fsync_dir

from .args import check_u64
from .errors import ChunkGap, CorruptedLog, InvalidArgument
from .ops import APPLY_RECORD, above, apply_append
from .types import LogState

#: raft-log's defaults (Config::chunk_max_records, Config::chunk_max_size).
RAFT_LOG_CHUNK_MAX_RECORDS = 1024 * 1024
RAFT_LOG_CHUNK_MAX_SIZE = 1024 * 1024 * 1024


class _RaftLogReplay:
    """raft-log's replay: the state, and the entries if kept, by the rules of ops.py
    (applies only: raft-log wrote its records unchecked, so nothing here is checked)."""

    def __init__(self, state=LogState(), keep_entries=True):
        self.vote, self.last, self.committed, self.purged, self.user_data = state
        #: index -> (log id, payload), or None when only the state is wanted.
        self.entries = {} if keep_entries else None

    def state(self):
        return LogState(self.vote, self.last, self.committed, self.purged, self.user_data)

    def set_state(self, state):
        self.vote, self.last, self.committed, self.purged, self.user_data = state

    def add_entries(self, entries):
        if self.entries is not None:
            for log_id, payload in entries:
                self.entries[log_id[1]] = (log_id, payload)

    def drop_from(self, index):
        if self.entries is not None:
            for i in [i for i in self.entries if i >= index]:
                del self.entries[i]

    def drop_upto(self, index):
        if self.entries is not None:
            for i in [i for i in self.entries if i <= index]:
                del self.entries[i]

    def apply(self, rtype, value):
        """Replay one record (raft-log writes first and checks later: nothing is checked)."""
        if rtype == codec.APPEND:
            apply_append(self, (value,))
        else:
            APPLY_RECORD[rtype](self, value)


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
            if not (i == len(files) - 1 and codec.is_torn_tail(data, end, exc, with_gid=False)):
                raise CorruptedLog(file_path, end, str(exc)) from None
        expected = start + end
    entries = [replay.entries[i] for i in sorted(replay.entries)]
    return replay.state(), entries


def import_raft_log(store, gid, path):
    """Load the raft-log directory ``path`` as the new group ``gid``; durable on return.

    The group is written with the ordinary ops (purge, vote, commit, user
    data, then the entries), so the store checks it like any other write.
    """
    state, entries = read_raft_log(path)
    expected_last = entries[-1][0] if entries else state.purged
    if state.last != expected_last:
        raise InvalidArgument(f"{path}: state.last {state.last} does not match the entries "
                              f"(expected {expected_last})")
    gid = check_u64(gid, "group id")
    ops = [(name, gid, value) for name, value in (
        ("purge", state.purged), ("save_vote", state.vote), ("commit", state.committed),
        ("save_user_data", state.user_data), ("append", entries or None)) if value is not None]
    store._import(gid, ops)
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
            while self.closed and not above(self.closed[0][2].last, value):
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
