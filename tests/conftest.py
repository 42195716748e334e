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
    """Every file of a directory and its bytes (LOCK aside: it holds a pid)."""
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path)) if name != "LOCK"}


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
