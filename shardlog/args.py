"""Arguments of the write operations: checked and normalized before any lock is taken.

Shared by the embedded Store, the front (requests off the wire) and the
clients' batches, so one rule holds for all: log ids and votes become
``(int, int)`` tuples within u64, payloads ``bytes``; anything else is an
InvalidArgument that names what was wrong.
"""

from .errors import InvalidArgument
from .types import U32_MAX, U64_MAX


def check_u64(value, what):
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise InvalidArgument(f"{what} must be an integer in [0, 2**64), not {value!r}")
    return value


def check_pair(value, what):
    if not isinstance(value, (tuple, list)):
        raise InvalidArgument(f"{what} must be a pair of integers, not {type(value).__name__}")
    try:
        a, b = value
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be a pair of integers, not {value!r}") from None
    if type(a) is not int or type(b) is not int or not (0 <= a <= U64_MAX and 0 <= b <= U64_MAX):
        raise InvalidArgument(f"{what} must be a pair of integers in [0, 2**64), not {value!r}")
    return (a, b)


def check_bytes(value, what):
    if type(value) is not bytes:
        if not isinstance(value, (bytearray, memoryview)):
            raise InvalidArgument(f"{what} must be bytes, not {type(value).__name__}")
        value = bytes(value)
    if len(value) > U32_MAX:
        raise InvalidArgument(f"{what} is longer than 2**32-1 bytes")
    return value


def check_entries(entries):
    """``[((term, index), bytes), ...]`` from any iterable of entries, or InvalidArgument."""
    out = []
    append = out.append
    try:
        for log_id, payload in entries:
            if type(log_id) is not tuple or len(log_id) != 2:
                log_id = check_pair(log_id, "log id")
            else:
                term, index = log_id
                if type(term) is not int or type(index) is not int or not (
                        0 <= term <= U64_MAX and 0 <= index <= U64_MAX):
                    check_pair(log_id, "log id")
            if type(payload) is not bytes or len(payload) > U32_MAX:
                payload = check_bytes(payload, "payload")
            append((log_id, payload))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"entries must be an iterable of (log_id, payload): {exc}") from None
    return out


def check_optional_bytes(value, what):
    return None if value is None else check_bytes(value, what)


#: The write operations and how each one's argument is normalized.
WRITE_OPS = {
    "save_vote": lambda a: check_pair(a, "vote"),
    "append": check_entries,
    "truncate": lambda a: check_u64(a, "index"),
    "purge": lambda a: check_pair(a, "log id"),
    "commit": lambda a: check_pair(a, "log id"),
    "save_user_data": lambda a: check_optional_bytes(a, "user data"),
}


def normalize_arg(op, arg):
    return WRITE_OPS[op](arg)


class Batch:
    """Records writes for many groups; ``submit(ops)`` runs when the block ends.

    ``ops`` is ``[(op, gid, normalized arg), ...]``. Arguments are checked as
    they are recorded, so a bad one raises inside the ``with`` block and
    nothing is submitted.
    """

    def __init__(self, submit, normalize=normalize_arg):
        self._submit = submit
        #: How an op's argument is checked and stored (a client stores the wire form).
        self.normalize = normalize
        self.ops = []
        self.result = None

    def group(self, gid):
        return _BatchGroup(self, check_u64(gid, "group id"))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.result = self._submit(self.ops)


class _BatchGroup:
    __slots__ = ("_batch", "gid")

    def __init__(self, batch, gid):
        self._batch = batch
        self.gid = gid

    def _add(self, op, arg):
        self._batch.ops.append((op, self.gid, self._batch.normalize(op, arg)))
        return self

    def save_vote(self, vote):
        return self._add("save_vote", vote)

    def append(self, entries):
        return self._add("append", entries)

    def truncate(self, index):
        return self._add("truncate", index)

    def purge(self, upto):
        return self._add("purge", upto)

    def commit(self, log_id):
        return self._add("commit", log_id)

    def save_user_data(self, user_data):
        return self._add("save_user_data", user_data)
