"""Flush workers: the code that writes a disk's stream and makes it durable.

This folder installs as ``shardlog.workers`` (pyproject.toml), so installing
shardlog takes no global module name but its own. ``writer`` is plain file
I/O, used by the engine's flush thread and by the worker process alike;
``policy`` is what both do with a disk's requests. The package owns the two
things it shares with the engine, chunk file names (``naming``) and the
messages between engine and flusher (``messages``), and imports nothing of
the rest of ``shardlog``.
"""
