"""The storage engine: groups, records, chunks, index, cache, recovery, the Store.

It imports no ZeroMQ (tests/test_layers.py checks it): it runs embedded in a
Raft node's process, with a flush thread per disk, or inside the front.
"""
