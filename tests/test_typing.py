"""The public API carries type hints (the package ships py.typed): at run time for
``typing.get_type_hints``, and for a type checker (mypy on a usage snippet, when mypy
is installed). The write methods are made at run time from ops.WRITE_OPS; type
checkers see them through ``ops.WriteMethods``, which must agree with the table."""

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
import typing

import pytest

from shardlog.batch import Batch, BatchGroup
from shardlog.client import AsyncClient, AsyncClientGroup, Client, ClientGroup, aio, blocking
from shardlog.columns import AppendColumns
from shardlog.engine.store import Group, Store
from shardlog.ops import ARG_TYPES, WRITE_OPS
from shardlog.types import Entry, LogId, Vote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Each group handle, and what its write methods are annotated to return (the
#: async handle's: what the coroutine gives, as for an ``async def``).
HANDLES = {Group: type(None), ClientGroup: type(None), AsyncClientGroup: type(None), BatchGroup: BatchGroup}

PUBLIC_CLASSES = [Store, Group, Client, ClientGroup, blocking._Pending, AsyncClient, AsyncClientGroup, aio._Pending,
                  Batch, BatchGroup, AppendColumns]
DUNDERS = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__repr__", "__len__"}


def public_functions(cls):
    """``(name, function)`` of each public method (and property) defined by ``cls``, the generated ones included."""
    for name, raw in vars(cls).items():
        if name.startswith("_") and name not in DUNDERS:
            continue
        if isinstance(raw, (classmethod, staticmethod)):
            yield name, raw.__func__
        elif isinstance(raw, property):
            yield name, raw.fget
        elif inspect.isfunction(raw):
            yield name, raw


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_public_methods_are_annotated(cls):
    """Every parameter but ``self`` and the return value, with names that resolve at run time."""
    functions = dict(public_functions(cls))
    assert functions
    for name, function in functions.items():
        hints = typing.get_type_hints(function)
        params = list(inspect.signature(function).parameters)[1:]  # (self or cls)
        missing = [p for p in params + ["return"] if p not in hints]
        assert not missing, f"{cls.__qualname__}.{name} has no annotation for {missing}"


def test_the_table_annotations_are_types():
    assert ARG_TYPES == {"save_vote": Vote, "append": typing.Iterable[Entry], "truncate": int, "purge": LogId,
                         "commit": LogId, "save_user_data": typing.Optional[bytes]}


@pytest.mark.parametrize("cls", list(HANDLES), ids=lambda cls: cls.__qualname__)
def test_generated_write_methods_carry_their_types(cls):
    for op in WRITE_OPS.values():
        method = getattr(cls, op.name)
        assert typing.get_type_hints(method) == {op.field: ARG_TYPES[op.name], "flush": bool, "return": HANDLES[cls]}
        assert method.__module__ == cls.__module__ and method.__qualname__ == f"{cls.__qualname__}.{op.name}"


def test_bound_write_methods_carry_their_types(open_store):
    store = open_store()
    g = store.group(1)
    assert typing.get_type_hints(g.append) == {"entries": typing.Iterable[Entry], "flush": bool,
                                               "return": type(None)}
    assert typing.get_type_hints(store.batch().group(1).commit) == {"log_id": LogId, "flush": bool,
                                                                    "return": BatchGroup}


def test_the_declaration_for_type_checkers_matches_the_table():
    """ops.WriteMethods (seen by type checkers only) declares each op of WRITE_OPS, in
    order, with its field, its annotation and ``flush: bool = False``, returning R."""
    with open(os.path.join(ROOT, "shardlog", "ops.py")) as f:
        tree = ast.parse(f.read())
    found = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "WriteMethods"]
    assert len(found) == 1
    methods = [node for node in found[0].body if isinstance(node, ast.FunctionDef)]
    assert [m.name for m in methods] == list(WRITE_OPS)
    for method in methods:
        op = WRITE_OPS[method.name]
        args = method.args
        assert [a.arg for a in args.args] == ["self", op.field, "flush"], op.name
        assert ast.unparse(args.args[1].annotation) == op.annotation, op.name
        assert ast.unparse(args.args[2].annotation) == "bool" and ast.literal_eval(args.defaults[-1]) is False
        assert len(args.defaults) == 1 and ast.unparse(method.returns) == "R", op.name


# ------------------------------------------------------------ mypy on code that uses the API

SNIPPETS = {
    # The API as README.md and docs/raft.md use it: no error under --strict.
    "good.py": """
        from typing import Any, Iterator, List, Optional, Tuple

        from shardlog import LogState
        from shardlog.batch import Batch, BatchGroup
        from shardlog.client import AsyncClient, AsyncClientGroup, Client, ClientGroup
        from shardlog.engine.store import Group, Store
        from shardlog.types import Entry, LogId


        def embedded(path: str) -> Tuple[LogState, List[Entry], Optional[int]]:
            with Store.open([path], cache_max_items=10) as store:
                g: Group = store.group(42)
                g.save_vote((1, 7))
                g.append([((1, 0), b"first"), ((1, 1), b"second")], flush=True)
                g.commit(log_id=(1, 1))
                g.flush()
                g.flush(callback=lambda err: None, timeout=1.5)
                entries: List[Entry] = list(g.read(0, 10))
                g.truncate(1)
                g.purge((1, 0))
                g.save_user_data(b"u")
                g.save_user_data(None)
                store.flush()
                b: Batch
                with store.batch(flush=True) as b:
                    chained: BatchGroup = b.group(7).append([((1, 0), b"x")]).commit((1, 0))
                store.write([("save_vote", 8, (1, 1)), ("append", 8, [((1, 0), b"y")])])
                page, nxt = store.read_page(8, 0, 10, max_entries=5)
                first, terms, sizes, payloads, _ = store.read_columns(8, 0, 10)
                gids: List[int] = store.groups()
                figures: dict[str, Any] = store.stat(group_limit=3)
                last: Optional[LogId] = g.state().last
                return g.state(), entries + page, nxt


        def blocking(endpoint: str) -> LogState:
            with Client(endpoint, timeout=5) as client:
                g: ClientGroup = client.group(42)
                g.save_vote((1, 7))
                g.append([((1, 0), b"first"), ((1, 1), b"second")], flush=True)
                g.commit((1, 1))
                g.flush(callback=lambda err: print(err))
                client.poll(0.1)
                entries: Iterator[Entry] = g.read(0, 10)
                with client.batch(flush=True) as b:
                    for gid in range(100, 200):
                        b.group(gid).append([((1, 0), b"x")])
                pending = [client.submit("append", gid=7, entries=[[1, i, b"p"]]) for i in range(1000)]
                results: List[Any] = [p.result() for p in pending]
                client.drop_group(7, timeout=2.0)
                return g.state()


        async def asynchronous(endpoint: str) -> LogState:
            async with AsyncClient(endpoint) as c:
                g: AsyncClientGroup = c.group(1)
                await g.save_vote((1, 7))
                await g.append([((1, 0), b"a")], flush=True)
                entries: Iterator[Entry] = await g.read(0, 5)
                await g.flush()
                async with c.batch(flush=True) as b:
                    b.group(2).append([((1, 0), b"x")]).truncate(0)
                reply: Any = await c.submit("state", gid=1).result()
                gids: List[int] = await c.groups()
                return await g.state()
        """,
    # Misuse: an error on each line marked ``# E``, none elsewhere.
    "bad.py": """
        from shardlog.client import AsyncClient, Client
        from shardlog.engine.store import Store


        def embedded(store: Store, client: Client) -> None:
            g = store.group(1)
            g.append([(1, b"x")])  # E
            g.save_vote(7)  # E
            g.truncate((1, 2))  # E
            g.commit(log_id=(1, 0), flsh=True)  # E
            client.group(1).append(entries=[((1, 0), "text")])  # E
            state: int = g.state()  # E
            with store.batch() as b:
                b.group(1).purge(3)  # E


        async def asynchronous(c: AsyncClient) -> None:
            c.group(1).append([((1, 0), b"a")])  # E
            n: int = await c.group(1).flush()  # E
        """,
    # The names shardlog/__init__.py loads on first use (PEP 562).
    "lazy.py": """
        from shardlog import Store

        reveal_type(Store)
        """,
}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory):
    """mypy --strict on the snippets (shardlog's own modules followed, their errors not shown):
    ``{file name: [(line, message)]}``."""
    pytest.importorskip("mypy")
    where = tmp_path_factory.mktemp("typing")
    for name, text in SNIPPETS.items():
        (where / name).write_text(textwrap.dedent(text))
    env = dict(os.environ, MYPYPATH=ROOT)  # (an editable install is an import hook, which mypy does not follow)
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
                          "--show-error-codes", "--cache-dir", str(where / ".mypy_cache"), *SNIPPETS],
                         cwd=where, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stdout + out.stderr  # (1: errors found, as in bad.py)
    found = {name: [] for name in SNIPPETS}
    for line in out.stdout.splitlines():
        match = re.match(r"(\w+\.py):(\d+): (error|note): (.*)", line)
        assert match and match[1] in found, out.stdout
        found[match[1]].append((int(match[2]), f"{match[3]}: {match[4]}"))
    return found


def test_mypy_accepts_the_documented_usage(mypy_output):
    assert mypy_output["good.py"] == []


def test_mypy_catches_misuse(mypy_output):
    lines = textwrap.dedent(SNIPPETS["bad.py"]).splitlines()
    marked = {number for number, line in enumerate(lines, 1) if line.endswith("# E")}
    errors = {number for number, message in mypy_output["bad.py"] if message.startswith("error")}
    assert errors == marked, mypy_output["bad.py"]


def test_mypy_sees_the_lazy_names_of_the_package(mypy_output):
    """shardlog/__init__.py gives them through __getattr__ (PEP 562), which type
    checkers would see as Any without its imports under ``if TYPE_CHECKING:``."""
    assert mypy_output["lazy.py"][0][1] != 'note: Revealed type is "Any"', mypy_output["lazy.py"]
