"""Adapters that keep the log of an existing Raft library in shardlog.

Each module is named after the library it adapts and imports it; nothing here
is imported by ``shardlog`` itself, so the library is needed only by those who
use its adapter (``pip install 'shardlog[pysyncobj]'`` for
``shardlog.integrations.pysyncobj``).
"""
