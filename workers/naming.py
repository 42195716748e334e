"""Chunk file names, shared by the engine and the flush workers.

A chunk is named after its global byte offset in the disk's stream, printed as
raft-log does: 20 zero-padded digits grouped by ``_``, e.g.
``r-00_000_000_000_000_000_324.wal``.
"""

import os

from .files import OS_FILES

LOCK_FILE = "LOCK"
#: See workers/marks.py.
MARKS_FILE = "MARKS"
#: See workers/writer.py: space held back for the records that free space.
SPARE_FILE = "SPARE"
#: See workers/writer.py: the next chunk's file, allocated ahead.
PREPARED_FILE = "NEXT"
_PREFIX = "r-"
_SUFFIX = ".wal"


def format_offset(offset: int) -> str:
    digits = f"{offset:020d}"
    return "_".join([digits[:2]] + [digits[i:i + 3] for i in range(2, 20, 3)])


def chunk_file_name(offset: int) -> str:
    return f"{_PREFIX}{format_offset(offset)}{_SUFFIX}"


def chunk_path(data_dir, offset: int) -> str:
    return os.path.join(os.fspath(data_dir), chunk_file_name(offset))


def parse_chunk_file_name(name: str):
    """The offset a chunk file name stands for, or None if it is not a chunk name."""
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    body = name[len(_PREFIX):-len(_SUFFIX)]
    digits = body.replace("_", "")
    if len(digits) != 20 or not digits.isdigit() or format_offset(int(digits)) != body:
        return None
    return int(digits)


def list_chunks(data_dir, files=OS_FILES):
    """Sorted ``(offset, path)`` of every chunk file in ``data_dir``, and the names ignored
    (hidden files are skipped silently: test hooks keep theirs there)."""
    chunks, ignored = [], []
    for name in files.listdir(data_dir):
        if name in (LOCK_FILE, MARKS_FILE, SPARE_FILE, PREPARED_FILE) or name.startswith("."):
            continue
        offset = parse_chunk_file_name(name)
        if offset is None:
            ignored.append(name)
        else:
            chunks.append((offset, os.path.join(os.fspath(data_dir), name)))
    chunks.sort()
    return chunks, ignored
