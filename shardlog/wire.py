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


class RemoveRequest(NamedTuple):
    seq: int
    #: Start offsets of the chunk files to delete, oldest first.
    chunks: Tuple[int, ...]
