"""Clients of a shardlog server, blocking and asyncio, over one protocol core.

``shardlog.client`` imports nothing of the engine: a Raft host that only talks
to a server loads the protocol and ZeroMQ, nothing else of shardlog.
"""

from .aio import AsyncClient, AsyncClientGroup
from .blocking import Client, ClientGroup
from .core import DEFAULT_ENDPOINT, ClientInUse, ClientMisuse, NotConnected

__all__ = ["AsyncClient", "AsyncClientGroup", "Client", "ClientGroup", "ClientInUse", "ClientMisuse",
           "DEFAULT_ENDPOINT", "NotConnected"]
