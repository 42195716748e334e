"""Appends in columns: many groups' entries without a Python object per entry.

A Raft host's round appends one or a few entries to each of many groups. As
rows (``("append", gid, [((term, index), payload), ...])``) every entry is a
tuple, a list item and a msgpack array at each step between the caller and
the disk. ``AppendColumns`` holds the same appends as four arrays and one byte
string: row ``k`` appends entry ``(terms[k], indexes[k])``, whose payload is
the next ``sizes[k]`` bytes of ``data``, to group ``gids[k]``; consecutive
rows of one group are one append. The batch recorder fills it, the clients
send the columns as they are (docs/protocol.md, ``batch``), the front takes
them back with ``frombytes``, and the engine checks and applies them in one
pass (Store.write_normalized).
"""

from __future__ import annotations

import sys
from array import array
from io import BytesIO
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Self, Tuple, Union

from .args import check_bytes
from .errors import BadRequest, InvalidArgument
from .types import U64_MAX, LogId

if TYPE_CHECKING:
    #: A column of unsigned integers: ``array("Q")`` or ``array("I")``.
    Column = array[int]
else:
    Column = array  # (subscriptable at run time from Python 3.12 only: this keeps get_type_hints working)

#: The columns on the wire, with their array type codes (little-endian there).
WIRE_COLUMNS = (("gids", "Q"), ("terms", "Q"), ("indexes", "Q"), ("sizes", "I"))


class AppendColumns:
    __slots__ = ("gids", "terms", "indexes", "sizes", "data")

    def __init__(self, gids: Optional[Column] = None, terms: Optional[Column] = None,
                 indexes: Optional[Column] = None, sizes: Optional[Column] = None,
                 data: Union[bytes, bytearray] = b"") -> None:
        self.gids = array("Q") if gids is None else gids
        self.terms = array("Q") if terms is None else terms
        self.indexes = array("Q") if indexes is None else indexes
        self.sizes = array("I") if sizes is None else sizes
        #: The payloads one after another (a bytearray while recording).
        self.data: Union[bytes, bytearray] = data if gids is not None else bytearray()

    def __len__(self) -> int:
        return len(self.gids)

    def add(self, gid: int, entries: Iterable[Tuple[LogId, Any]]) -> int:
        """Record ``entries`` (``[((term, index), payload), ...]``) appended to
        group ``gid``, checked as the row form is (args.check_entries): a bad
        entry raises InvalidArgument and records nothing of ``entries``.
        Returns how many were recorded."""
        gids, terms, indexes, sizes, data = self.gids, self.terms, self.indexes, self.sizes, self.data
        if type(data) is not bytearray:
            raise TypeError("these columns are read-only (off the wire, or submitted)")
        n, nbytes = len(gids), len(data)
        try:
            for (term, index), payload in entries:
                if type(term) is not int or type(index) is not int:
                    raise TypeError(f"log id ({term!r}, {index!r}) is not a pair of integers")
                if type(payload) is not bytes:
                    payload = check_bytes(payload, "payload")
                terms.append(term)
                indexes.append(index)
                sizes.append(len(payload))
                data += payload
                gids.append(gid)
        except (TypeError, ValueError, OverflowError) as exc:
            for column in (gids, terms, indexes, sizes):
                del column[n:]
            del data[nbytes:]
            if isinstance(exc, InvalidArgument):
                raise
            raise InvalidArgument(f"entries must be an iterable of ((term, index), payload), terms and "
                                  f"indexes in [0, {U64_MAX}]: {exc}") from None
        return len(gids) - n

    def runs(self) -> List[Tuple[int, int, int]]:
        """``(gid, lo, hi)`` of each run of consecutive rows of one group."""
        gids = self.gids
        out = []
        lo, n = 0, len(gids)
        while lo < n:
            gid = gids[lo]
            hi = lo + 1
            while hi < n and gids[hi] == gid:
                hi += 1
            out.append((gid, lo, hi))
            lo = hi
        return out

    def cut(self) -> Tuple[List[LogId], List[bytes]]:
        """Every row's log id and payload, as two lists built in C: cut row by
        row in Python, a round's payload slices and log ids took 410 ns a row,
        195 this way (issue 11)."""
        return list(zip(self.terms, self.indexes)), list(cut_payloads(self.data, self.sizes))

    def rows(self) -> List[Tuple[str, int, List[Tuple[LogId, bytes]]]]:
        """The same appends as row ops, ``[("append", gid, entries), ...]``."""
        log_ids, payloads = self.cut()
        return [("append", gid, list(zip(log_ids[lo:hi], payloads[lo:hi]))) for gid, lo, hi in self.runs()]

    def payload_bytes(self) -> int:
        return len(self.data)

    # ------------------------------------------------------------ on the wire

    def to_wire(self) -> Dict[str, bytes]:
        """The msgpack map of docs/protocol.md: each column little-endian, ``data`` as is."""
        fields = {name: little_endian(getattr(self, name)).tobytes() for name, _ in WIRE_COLUMNS}
        fields["data"] = bytes(self.data)
        return fields

    @classmethod
    def from_wire(cls, fields: Any) -> Self:
        """Columns off the wire, or BadRequest when they cannot be one batch's."""
        if not isinstance(fields, dict):
            raise BadRequest("columns must be a map of gids, terms, indexes, sizes and data")
        columns = []
        for name, code in WIRE_COLUMNS:
            raw = fields.get(name)
            column = array(code)
            if not isinstance(raw, bytes) or len(raw) % column.itemsize:
                raise BadRequest(f"columns.{name} must be binary, {column.itemsize} bytes per row")
            column.frombytes(raw)
            columns.append(little_endian(column))
        data = fields.get("data")
        if not isinstance(data, bytes):
            raise BadRequest("columns.data must be binary")
        gids, terms, indexes, sizes = columns
        if not len(gids) == len(terms) == len(indexes) == len(sizes):
            raise BadRequest(f"columns of different lengths: {len(gids)} gids, {len(terms)} terms, "
                             f"{len(indexes)} indexes, {len(sizes)} sizes")
        if sum(sizes) != len(data):
            raise BadRequest(f"columns.sizes add up to {sum(sizes)} bytes, columns.data holds {len(data)}")
        return cls(gids, terms, indexes, sizes, data)


def cut_payloads(data: Union[bytes, bytearray], sizes: Column) -> Iterator[bytes]:
    """The payloads held one after another in ``data``, ``sizes[k]`` bytes
    each, as bytes whatever ``data`` is; read off in C (``BytesIO.read``), not
    sliced in a Python loop, which took a third of a read reply's decoding
    (issue 11). The caller checks that the sizes add up to ``len(data)``."""
    return map(BytesIO(data).read, sizes)


def little_endian(column: Column) -> Column:
    """``column`` with the byte order of the wire (a copy only on big-endian hosts)."""
    if sys.byteorder != "little":
        column = array(column.typecode, column)
        column.byteswap()
    return column
