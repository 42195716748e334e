import os

import pytest

from shardlog import Store


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def open_store(data_dir):
    """``open_store(**settings)`` opens a Store on ``data_dir``; all are closed at the end."""
    stores = []

    def opener(dirs=None, **settings):
        store = Store.open(dirs or data_dir, **settings)
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


def snapshot(path):
    """Every file of a directory and its bytes. LOCK aside: it holds a pid; and
    NEXT: zeros the flush thread makes ahead when it is idle, after whatever
    write began the open chunk (workers/writer.py)."""
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path)) if name not in ("LOCK", "NEXT")}


def settle(store):
    """Flush, then flush again: no flush waits for the chunk deletions its
    progress asks for, the next one does; then the files are what they stay."""
    store.flush()
    store.flush()


def chunk_names(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".wal"))


@pytest.fixture
def start_server(tmp_path):
    """``start_server(data_dirs=None, *args)`` runs a real server; all are stopped and reaped."""
    from .service import Server

    servers = []

    def start(data_dirs=None, *args, env=None, ready=True):
        server = Server(data_dirs or [tmp_path / "data"], *args, env=env)
        servers.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in servers:
        server.cleanup()


def forget_sync(data_dir, synced=None):
    """Make the data directory's marks say that only ``synced`` bytes of the stream
    were durable (default: up to its newest chunk), as after a crash that came
    before the newest records were fsynced: their damage is then a torn tail."""
    from shardlog.workers.marks import MARKS_FILE, MarksWriter, read_marks

    oldest, _ = read_marks(data_dir)
    if synced is None:
        synced = int(chunk_names(data_dir)[-1][2:-4].replace("_", ""))
    os.unlink(os.path.join(data_dir, MARKS_FILE))
    marks = MarksWriter(os.fspath(data_dir), oldest, synced)
    marks.create()
    marks.close()


def kill_after_flush(store):
    """Stop ``store`` as a kill -9 after its last flush would: its newest chunk is
    left unsealed (a clean close seals it)."""
    store.flush()
    for disk in store._disks:
        disk.close()
    for lock in store._dir_locks:
        lock.release()
    store._closed = True
