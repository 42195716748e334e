"""The dependency rules of DESIGN.md section 3, checked on the source."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENGINE = ["store", "disk", "group", "index", "chunks", "cache", "recovery", "codec", "flusher", "compat",
          "settings", "lockfile", "model"]
#: Modules shared by every layer: no engine state, no sockets.
SHARED = {"errors", "types", "naming", "wire", "args", "ops", "batch", "protocol"}


def imports_of(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: inside shardlog
                out.add("shardlog." + base if base else "shardlog")
                if not base:
                    out.update("shardlog." + alias.name for alias in node.names)
            else:
                out.add(base)
    return out


def module_path(package, name):
    return os.path.join(ROOT, package, name + ".py")


def test_the_engine_imports_no_zeromq():
    for name in ENGINE:
        found = {m for m in imports_of(module_path("shardlog", name)) if m.split(".")[0] == "zmq"}
        assert not found, f"shardlog/{name}.py imports {found}"


def test_workers_import_only_wire_and_naming_from_shardlog():
    for name in os.listdir(os.path.join(ROOT, "workers")):
        if name.endswith(".py"):
            from_shardlog = {m for m in imports_of(os.path.join(ROOT, "workers", name))
                             if m.startswith("shardlog")}
            assert from_shardlog <= {"shardlog.wire", "shardlog.naming"}, (name, from_shardlog)


def test_the_client_imports_nothing_of_the_engine():
    seen, todo = set(), ["client"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module in imports_of(module_path("shardlog", name)):
            if module.startswith("shardlog."):
                todo.append(module.split(".")[1])
    assert not seen & set(ENGINE), f"the client reaches {seen & set(ENGINE)}"
    assert seen <= SHARED | {"client", "security"}, seen
