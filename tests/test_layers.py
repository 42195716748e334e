"""The dependency rules of DESIGN.md section 3, checked on the source by path and transitively,
and on what a process really loads.

- the engine (``shardlog/engine``) reaches no ZeroMQ, through any import, even one inside a function;
- the flush workers (the repository's ``workers/``, installed as ``shardlog.workers``) import nothing
  of ``shardlog`` outside themselves: they own the two modules they share with the engine;
- the client (``shardlog/client``) reaches nothing of the engine, the server, the CLI or the workers;
- the shared leaves (types, errors, args, ops, batch) reach only each other;
- the engine and ZeroMQ meet only in the server (and in the CLI and test helpers that start it).
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = "shardlog.workers"
LEAVES = {"shardlog", "shardlog.types", "shardlog.errors", "shardlog.args", "shardlog.ops", "shardlog.batch",
          "shardlog.columns"}


def module_file(name):
    """The source file of module ``name`` in this repository, or None (not ours)."""
    if under(name, WORKERS):  # installed under shardlog's name, kept in workers/ (pyproject.toml)
        name = "workers" + name[len(WORKERS):]
    base = os.path.join(ROOT, *name.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def all_modules():
    out = []
    for top in ("shardlog", "workers"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                    rel = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
                    out.append("shardlog." + rel if top == "workers" else rel)
    return sorted(out)


def imports_of(name, deep):
    """Absolute names of what module ``name`` imports; ``deep`` counts imports inside
    functions too (deferred: loaded only when called)."""
    path = module_file(name)
    with open(path) as f:
        tree = ast.parse(f.read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    nodes = ast.walk(tree) if deep else _module_level(tree.body)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for imported in list(out):
        parts = imported.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def _module_level(body):
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            continue  # never runs: for type checkers only
        elif isinstance(node, (ast.If, ast.Try)):
            for block in [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]:
                yield from _module_level(block)
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def reach(name):
    """Every module ``name`` may load, ours and others', following our own modules and
    counting imports inside functions too. The one exception is the package's own
    ``__init__``, whose ``__getattr__`` loads the engine only when ``shardlog.Store``
    is asked for (the runtime tests below check what a process really loads)."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if module_file(current):
            todo.extend(imports_of(current, deep=current != "shardlog"))
    return seen


def is_zmq(name):
    return name.split(".")[0] == "zmq"


def under(name, *packages):
    return any(name == p or name.startswith(p + ".") for p in packages)


MODULES = all_modules()


def test_the_modules_are_found():
    assert "shardlog.engine.store" in MODULES and "shardlog.workers.writer" in MODULES
    assert "shardlog.client.aio" in MODULES


@pytest.mark.parametrize("name", [m for m in MODULES if under(m, "shardlog.engine")])
def test_the_engine_reaches_no_zeromq(name):
    found = sorted(m for m in reach(name) if is_zmq(m))
    assert not found, f"{name} reaches {found}"


@pytest.mark.parametrize("name", [m for m in MODULES if under(m, WORKERS)])
def test_workers_import_nothing_of_shardlog(name):
    """Python runs ``shardlog/__init__`` first (the package they are installed in),
    with what it imports; their own imports stay among themselves."""
    package = reach("shardlog")
    found = sorted(m for m in reach(name) if under(m, "shardlog") and not under(m, WORKERS) and m not in package)
    assert not found, f"{name} reaches {found}"


@pytest.mark.parametrize("name", [m for m in MODULES if under(m, "shardlog.client")])
def test_the_client_reaches_nothing_of_the_engine(name):
    found = sorted(m for m in reach(name)
                   if under(m, "shardlog.engine", "shardlog.server", "shardlog.cli", "shardlog.testing", WORKERS))
    assert not found, f"{name} reaches {found}"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_the_shared_leaves_reach_only_each_other(name):
    ours = {m for m in reach(name) if under(m, "shardlog")}
    assert ours <= LEAVES, f"{name} reaches {sorted(ours - LEAVES)}"


def test_engine_and_zeromq_meet_only_in_the_server():
    for name in MODULES:
        if under(name, "shardlog.server", "shardlog.cli", "shardlog.testing", "shardlog.__main__"):
            continue
        loaded = reach(name)
        both = any(under(m, "shardlog.engine") for m in loaded) and any(is_zmq(m) for m in loaded)
        assert not both, f"{name} reaches both the engine and ZeroMQ"


def loaded_by(code):
    """The modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_an_embedded_store_loads_no_zeromq():
    loaded = loaded_by("import shardlog, shardlog.compat; shardlog.Store; import shardlog.engine.store")
    assert "shardlog.engine.store" in loaded
    assert not {m for m in loaded if is_zmq(m)}


def test_a_client_loads_nothing_of_the_engine():
    loaded = loaded_by("from shardlog.client import Client, AsyncClient")
    assert "zmq" in loaded
    assert not {m for m in loaded if under(m, "shardlog.engine", "shardlog.server", WORKERS)}


def test_a_worker_loads_nothing_of_shardlog():
    """Beside itself, the package's ``__init__`` and the two leaves it imports."""
    loaded = loaded_by("import shardlog.workers.writer, shardlog.workers.policy, shardlog.workers.messages, "
                       "shardlog.workers.naming")
    assert "shardlog.workers.writer" in loaded
    found = {m for m in loaded if under(m, "shardlog") and not under(m, WORKERS)}
    assert found <= {"shardlog", "shardlog.errors", "shardlog.types"}, found
    assert not {m for m in loaded if is_zmq(m)}
