"""Engine settings: one dict of defaults, and the check that rejects unknown names."""

from shardlog.errors import InvalidArgument

MiB = 1 << 20

#: See shardlog.engine.recovery.replay.
RECOVERY_MODES = ("tolerate-tail", "strict", "salvage")

DEFAULTS = {
    #: A chunk is closed once it holds this many bytes (checked after each record).
    "chunk_max_size": 64 * MiB,
    #: ... or this many records (its header and footer count as one each).
    "chunk_max_records": 1 << 20,
    #: Give each chunk file its room up front (twice the biggest of the last
    #: chunks, chunk_max_size at most), allocated and made ahead, so appends
    #: do not grow the file: an fdatasync then has no metadata to write
    #: (faster by a quarter to a third here).
    "chunk_preallocate": True,
    #: Durable payloads beyond these bounds (per disk) are dropped from memory.
    "cache_max_items": 100_000,
    "cache_max_bytes": 256 * MiB,
    #: Encoded records are handed to the flusher once this many wait, flush or not.
    "write_buffer_size": 1 * MiB,
    #: Backpressure: a write waits while its disk holds more unsynced bytes
    #: (they are kept in memory until durable, so this bounds that memory).
    "max_unsynced_bytes": 64 * MiB,
    #: On open, cut a torn last record or trailing zeros of the last chunk
    #: (as raft-log's ``truncate_incomplete_record``); otherwise refuse to open.
    "truncate_incomplete_record": True,
    #: Chunk files kept open for reads of payloads not in the cache, per disk
    #: (the newest opened; a lagging group may pin thousands of chunks).
    "max_open_chunk_files": 64,
    #: When a disk holds more than twice its live records plus four chunks,
    #: the groups pinning its oldest chunk that hold at most this many bytes
    #: of records are copied forward so the chunk can go ...
    "relocate_max_bytes": 1 * MiB,
    #: ... and bigger ones are reported as lagging, then copied anyway once
    #: they have pinned the oldest chunk through this many rotations.
    "lagging_rounds": 8,
    #: Creating a group beyond this many is refused with TooManyGroups.
    "max_groups": 1_000_000,
    #: What recovery does with damage: "tolerate-tail" (cut damage in the
    #: newest chunk, refuse it elsewhere), "strict" (cut only a torn record or
    #: zeros, as raft-log), "salvage" (skip damage anywhere and report it).
    "recovery_mode": "tolerate-tail",
    #: Open sealed chunks by their footers (fast); False replays every record
    #: and checks each footer against it.
    "read_footers": True,
}

_MINIMUM = {"chunk_max_size": 64, "chunk_max_records": 2, "cache_max_items": 0,
            "cache_max_bytes": 0, "write_buffer_size": 1, "max_unsynced_bytes": 1, "max_groups": 1,
            "max_open_chunk_files": 1, "relocate_max_bytes": 0, "lagging_rounds": 0}


def resolve(overrides):
    """Defaults updated by ``overrides``; a clear error for a wrong name or value."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise InvalidArgument(f"unknown setting(s): {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(DEFAULTS))}")
    settings = dict(DEFAULTS)
    for name, value in overrides.items():
        if value is None:
            continue
        default = DEFAULTS[name]
        if name == "recovery_mode":
            if value not in RECOVERY_MODES:
                raise InvalidArgument(f"setting recovery_mode must be one of {', '.join(RECOVERY_MODES)}, "
                                      f"not {value!r}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InvalidArgument(f"setting {name} must be true or false, not {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < _MINIMUM[name]:
            raise InvalidArgument(f"setting {name} must be an integer >= {_MINIMUM[name]}, not {value!r}")
        settings[name] = value
    return settings
