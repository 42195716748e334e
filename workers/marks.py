"""The ``MARKS`` file of a data directory: where the stream begins, and how far
it was known to be durable.

Chunk files alone cannot tell a deleted chunk from one never written: a
missing oldest chunk looks like a purge, a missing or cut newest chunk like a
crash before the writes. The marks say what must be there. ``oldest`` is
written and fsynced before chunks are deleted (so files below it are leftovers
of an interrupted deletion). ``synced`` is written after each batch is fsynced
and reported, and not fsynced itself: it can lag, but never exceed what is
durable, so a stream that ends below it lost acknowledged records.

Two 32-byte slots, written alternately, each ``u64 seq, u64 oldest, u64
synced, u64 crc32``: a torn write leaves the other slot whole.
"""

import os
import struct
import zlib

from .files import OS_FILES
from .naming import MARKS_FILE

_SLOT = struct.Struct(">QQQ")
_CRC = struct.Struct(">Q")
SLOT_SIZE = _SLOT.size + _CRC.size


def read_marks(data_dir, files=OS_FILES):
    """``(oldest, synced)`` of the newest whole slot, or None if there is no marks file
    (or no whole slot in it)."""
    found = _read_slot(data_dir, files)
    return None if found is None else found[1:]


def _read_slot(data_dir, files):
    path = os.path.join(data_dir, MARKS_FILE)
    if not files.exists(path):
        return None
    data = files.read(path)[:2 * SLOT_SIZE]
    best = None
    for at in (0, SLOT_SIZE):
        slot = data[at:at + SLOT_SIZE]
        if len(slot) != SLOT_SIZE or _CRC.unpack_from(slot, _SLOT.size)[0] != zlib.crc32(slot[:_SLOT.size]):
            continue
        seq, oldest, synced = _SLOT.unpack_from(slot)
        if best is None or seq > best[0]:
            best = (seq, oldest, synced)
    return best


class MarksWriter:
    """Keeps a data directory's marks; the chunk writer calls it."""

    def __init__(self, data_dir, oldest, synced, files=OS_FILES):
        self.path = os.path.join(data_dir, MARKS_FILE)
        self.oldest = oldest
        self.synced = synced
        self._files = files
        found = _read_slot(data_dir, files)
        #: Slots are numbered on from the file's newest: the reader takes the highest.
        self._seq = 0 if found is None else found[0]
        self._fd = None

    def _write(self, durable):
        if self._fd is None:
            self._fd = self._files.open(self.path, "rw")
        self._seq += 1
        slot = _SLOT.pack(self._seq, self.oldest, self.synced)
        self._files.pwrite(self._fd, slot + _CRC.pack(zlib.crc32(slot)), SLOT_SIZE * (self._seq % 2))
        if durable:
            self._files.fsync(self._fd)

    def create(self):
        """Make the file exist before the first chunk does, so that chunks without
        marks mean a deleted marks file. True if it was created (the caller
        then fsyncs the directory)."""
        if self._fd is not None or self._seq:  # (a file without a whole slot counts as none)
            return False
        self._write(durable=True)
        self._write(durable=True)  # both slots whole
        return True

    def set_synced(self, synced):
        if synced > self.synced:
            self.synced = synced
            self._write(durable=False)

    def set_oldest(self, oldest):
        """Durably, before the chunks below ``oldest`` are deleted."""
        self.oldest = oldest
        self._write(durable=True)

    def close(self):
        if self._fd is not None:
            self._files.close(self._fd)
            self._fd = None
