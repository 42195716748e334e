"""Messages between the engine and a disk's flusher (thread or worker process).

A write carries the global offset it starts at and the chunk it belongs to, so
the flusher writes it positionally: a request sent twice lands in the same
place. ``seq`` numbers requests in the order they were sent; the flusher
reports the highest one finished and the offset up to which the stream is
durable.
"""

from typing import NamedTuple, Tuple


class WriteRequest(NamedTuple):
    seq: int
    #: Global offset where the chunk (the file) starts.
    chunk: int
    #: Global offset of ``data[0]``.
    at: int
    data: bytes
    #: fsync before reporting (with every file written before it).
    sync: bool
    #: Bytes to give a chunk's file when the writer creates it (0: none): see
    #: ChunkWriter, "preallocated chunk files".
    reserve: int = 0


class RemoveRequest(NamedTuple):
    seq: int
    #: Start offsets of the chunk files to delete, oldest first.
    chunks: Tuple[int, ...]
    #: Where the last of them ends in the stream: where the stream begins after.
    #: (Not the file's size: a chunk file may still hold room after its footer.)
    end: int


# ------------------------------------------------------------ worker wire format
#
# Front -> worker (PUSH -> PULL), one message per request:
#   write:  [msgpack ["w", seq, chunk, at, sync, reserve], data]
#   remove: [msgpack ["r", seq, [chunk, ...], end]]
#   stop:   [msgpack ["stop"]]          finish what was received, then exit 0
# Worker -> front (XPUB -> SUB):
#   ["done", seq, synced, stats]        after each batch
#   ["hb", seq, synced, stats, failed, full, low]  every heartbeat interval; repeats done
#   ["failed", seq, message]            a write or fsync failed; no more writes
#   ["full", seq, message]              a write found the disk full; the worker holds the
#                                       requests and tries again each heartbeat
#   ["low", seq, message or None]       the disk began (or stopped) running on its spare
# The worker publishes nothing before the front's subscription reaches its XPUB.

import msgpack  # noqa: E402

#: One Packer for every message (``msgpack.packb`` makes one at every call:
#: 1.1 of its 2.4 µs here). Each process packs these in one thread only (the
#: front's loop, the worker's), and they are small: a Packer is not
#: thread-safe, and keeps the buffer of the largest message it packed.
_pack = msgpack.Packer(use_bin_type=True).pack


def pack_request(req):
    """Frames of a request for the worker."""
    if isinstance(req, WriteRequest):
        return [_pack(["w", req.seq, req.chunk, req.at, req.sync, req.reserve]), req.data]
    return [_pack(["r", req.seq, list(req.chunks), req.end])]


STOP = msgpack.packb(["stop"])


def unpack_request(frames):
    """A WriteRequest, RemoveRequest, or None for stop."""
    head = msgpack.unpackb(frames[0])
    if head[0] == "w":
        _, seq, chunk, at, sync, reserve = head
        return WriteRequest(seq, chunk, at, frames[1], sync, reserve)
    if head[0] == "r":
        return RemoveRequest(head[1], tuple(head[2]), head[3])
    if head[0] == "stop":
        return None
    raise ValueError(f"unknown worker request {head[0]!r}")


def pack_event(*fields):
    return _pack(list(fields))


def unpack_event(data):
    return msgpack.unpackb(data)
