"""Which store a data directory belongs to: its ``.store`` file.

A store places each group on one of its data directories. Opened with only
some of them (an ``import`` given one ``--data-dir`` of a server that has
two), it would create again a group that lives on a missing one, and the
whole set would then refuse to open ("group 1 is in both"). So each
directory records its store and every member of it::

    {"store": STORE_ID, "dir": DIR_ID, "members": [[DIR_ID, PATH], ...]}

``Store.open`` refuses directories that lack a member of their store, or that
belong to two stores, before it writes anything. A directory without the file
(new, or written by an older version) joins the store it is opened with; one
at the path of a known member is refused instead (an unmounted disk's mount
point looks just so). Members are known by id; their paths are where they
were last opened (for messages), so a moved directory is still the same
member.

The file changes only when the membership does. The file interface
(workers/files.py) has no rename, so a change is appended, not swapped in:
each line is a record and its crc32, fsynced; a reader takes the last whole
line, so a torn append leaves the record before it in force. (The name
starts with a dot: chunk listings pass over such files in silence.)
"""

import json
import os
import uuid
import zlib

from shardlog.errors import InvalidArgument
from shardlog.workers.files import OS_FILES

STORE_FILE = ".store"


def refuse_twice(data_dirs):
    """The same directory under two names (``d`` and ``d/``, a symlink) would lock itself out."""
    seen = {}  # real path -> the path given first
    for path in map(os.path.abspath, data_dirs):
        real = os.path.realpath(path)
        if real in seen:
            first = seen[real]
            raise InvalidArgument(f"data directory {first} is given twice"
                                  f"{'' if path == first else f' (also as {path})'}; give it once")
        seen[real] = path


def read_record(data_dir, files=OS_FILES):
    """The directory's last whole record, or None if it has none."""
    path = os.path.join(data_dir, STORE_FILE)
    if not files.exists(path):
        return None
    found = None
    for line in files.read(path).split(b"\n"):
        body, _, crc = line.rpartition(b" ")
        try:
            if body and int(crc, 16) == zlib.crc32(body):
                found = json.loads(body)
        except ValueError:  # a torn line
            continue
    return found


def join(data_dirs, files=OS_FILES):
    """Check that ``data_dirs`` (absolute paths) are every directory of one store, or
    new ones joining it; returns the records to write (``write``), or raises
    InvalidArgument naming what is wrong and the fix."""
    found = {path: read_record(path, files) for path in data_dirs}
    stores = {}  # store id -> a directory of it and its record
    for path, rec in found.items():
        if rec is not None:
            stores.setdefault(rec["store"], (path, rec))
    if len(stores) > 1:
        (p1, r1), (p2, r2) = list(stores.values())[:2]
        raise InvalidArgument(
            f"data directories {p1} and {p2} belong to different stores (one with {_paths(r1)}, the other "
            f"with {_paths(r2)}); give the data directories of one server")
    known = {}  # dir id -> its last path, of every member a record names
    for rec in found.values():
        if rec is not None:
            known.update(rec["members"])
    ids = {}  # path -> dir id
    for path, rec in found.items():
        if rec is not None:
            dir_id = rec["dir"]
            if dir_id in ids.values():
                first = next(p for p, i in ids.items() if i == dir_id)
                raise InvalidArgument(f"data directories {first} and {path} are copies of one data directory; "
                                      "give only one of them")
            ids[path] = dir_id
    for path, rec in found.items():
        if rec is None:  # a new directory, or one of an older version
            if path in known.values():
                # A member without its file: most likely its disk is not
                # mounted, and this is the empty mount point.
                raise InvalidArgument(f"data directory {path} is a member of this store but holds no {STORE_FILE} "
                                      "file: is its disk mounted? (to go on without a disk lost for good, see "
                                      "docs/operations.md)")
            ids[path] = uuid.uuid4().hex
    given = {dir_id: path for path, dir_id in ids.items()}
    missing = [path for dir_id, path in known.items() if dir_id not in given]
    if missing:
        every = [given.get(dir_id, path) for dir_id, path in known.items()]
        every += [path for path in data_dirs if path not in every]
        raise InvalidArgument(
            f"data director{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} not given, of the same store "
            f"as {', '.join(data_dirs)}; give every --data-dir of the server: {', '.join(every)}")
    store_id = next(iter(stores), None) or uuid.uuid4().hex
    members = [[ids[path], path] for path in data_dirs]
    records = [(path, {"store": store_id, "dir": ids[path], "members": members}) for path in data_dirs]
    # Joining directories first: once an old member names a new one, the new
    # one has its file (else a crash between would leave a member without
    # one, refused as an unmounted disk).
    records.sort(key=lambda item: found[item[0]] is not None)
    return [(path, rec) for path, rec in records if found[path] != rec]


def write(records, files=OS_FILES):
    """Append each ``(data_dir, record)`` to the directory's file, durably."""
    for data_dir, rec in records:
        body = json.dumps(rec, sort_keys=True).encode()
        line = body + b" %08x\n" % zlib.crc32(body)
        path = os.path.join(data_dir, STORE_FILE)
        fd = files.open(path, "rw")
        try:
            offset = files.fsize(fd)
            if offset:
                line = b"\n" + line  # (after a torn line, a line of its own)
            while line:
                done = files.pwrite(fd, line, offset)
                line, offset = line[done:], offset + done
            files.fsync(fd)
        finally:
            files.close(fd)
        files.sync_dir(data_dir)


def _paths(rec):
    return ", ".join(path for _, path in rec["members"])
