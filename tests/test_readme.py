"""The README's examples run as written (against a test server and temporary directories)."""

import re

from .service import ROOT


def blocks():
    with open(f"{ROOT}/README.md") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_client_session(start_server, capsys):
    server = start_server()
    code = blocks()[0].replace('"tcp://127.0.0.1:7700"', repr(server.endpoint))
    exec(compile(code, "README.md", "exec"), {})
    assert "((1, 0), b'first')" in capsys.readouterr().out
    with server.client() as client:
        assert len(client.groups()) == 1 + 100 + 1


def test_embedded_engine(tmp_path, capsys):
    dirs = repr([str(tmp_path / "1"), str(tmp_path / "2")])
    code = blocks()[1].replace('["/disk1/shardlog", "/disk2/shardlog"]', dirs)
    exec(compile(code.replace("lambda err: ...", "lambda err: None"), "README.md", "exec"), {})
    assert "LogState(vote=(1, 7), last=(1, 1)" in capsys.readouterr().out


def test_raft_log_interop(tmp_path):
    import shutil

    from shardlog import Store

    from .test_compat import REFERENCE

    shutil.copytree(REFERENCE / "raft-log", tmp_path / "raft-log")  # never write into tests/data
    code = (blocks()[2].replace('"/path/to/raft-log-dir"', repr(str(tmp_path / "raft-log")))
            .replace('"/tmp/out"', repr(str(tmp_path / "out"))))
    with Store.open(tmp_path / "data") as store:
        namespace = {"store": store}
        exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["state"].last == (2, 7)
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[0] == "LOCK"
