"""The op table (shardlog/ops.py) is the one definition of the write ops: every face has them from it."""

import inspect
import os

import pytest

from shardlog.batch import BatchGroup
from shardlog.client import AsyncClientGroup, ClientGroup
from shardlog.engine.store import Group
from shardlog.ops import WRITE_OPS, markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cls", [Group, ClientGroup, AsyncClientGroup, BatchGroup])
def test_every_handle_has_every_write_op_with_its_field_as_parameter(cls):
    for op in WRITE_OPS.values():
        method = getattr(cls, op.name)
        assert list(inspect.signature(method).parameters) == ["self", op.field, "flush"], (cls, op.name)
        assert method.__doc__.startswith(op.doc)


def test_the_handles_write_through_the_table(open_store):
    """A keyword call by the field name reaches the store with the normalized argument."""
    store = open_store()
    g = store.group(1)
    g.append(entries=[([1, 0], bytearray(b"a"))])
    g.commit(log_id=[1, 0])
    g.save_vote(vote=(1, 2), flush=True)
    assert g.state().committed == (1, 0) and g.state().vote == (1, 2)
    assert list(g.read(0, 5)) == [((1, 0), b"a")]


def test_protocol_doc_lists_the_write_ops_of_the_table():
    with open(os.path.join(ROOT, "docs", "protocol.md")) as f:
        assert markdown_table() in f.read()


def test_wire_form_round_trips_to_the_normal_form():
    samples = {"save_vote": (3, 1), "append": [((1, 0), b"a"), ((1, 1), b"")], "truncate": 7,
               "purge": (1, 4), "commit": (2, 9), "save_user_data": b"u"}
    assert samples.keys() == WRITE_OPS.keys()
    for name, value in samples.items():
        op = WRITE_OPS[name]
        assert op.from_wire(op.to_wire(op.normalize(value))) == op.normalize(value) == value
