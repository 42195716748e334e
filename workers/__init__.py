"""Flush workers: the code that writes a disk's stream and makes it durable.

``workers.writer`` is plain file I/O, used by the engine's flush thread and by
the worker process alike. This package imports from ``shardlog`` only the
wire-message and file-naming modules.
"""
