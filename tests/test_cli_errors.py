"""Errors a user can cause from the command line: one line on stderr naming the fix, a
non-zero exit, never a traceback. Real subprocesses, temporary directories, free ports."""

import os
import shlex
import socket
import subprocess
import sys

import psutil
import pytest

from shardlog import Store

from .service import ROOT

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
SHARDLOG = [sys.executable, "-m", "shardlog"]


def cli(*args, timeout=60):
    return subprocess.run([*SHARDLOG, *map(str, args)], capture_output=True, text=True, env=ENV,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def one_line_error(out, *words):
    """The one line of stderr of a failed command, holding each of ``words``."""
    assert out.returncode != 0, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def processes_on(path):
    """Processes whose command line names ``path`` (a serve and its flush workers)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(path) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def serve(data_dir, *args, timeout=30):
    """Run ``serve`` expecting it to fail at start. ``.left`` is the processes on ``data_dir``
    still there 5 s after it ended (killed and reaped then)."""
    proc = subprocess.Popen([*SHARDLOG, "serve", "--data-dir", str(data_dir), "--log-level", "WARNING",
                             "--disk-reserve-bytes", "0", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=ENV)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"serve did not exit in {timeout} s:\n{stderr}")
    finally:
        _, left = psutil.wait_procs(processes_on(data_dir), timeout=5)
        for p in left:
            p.kill()
        psutil.wait_procs(left, timeout=5)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    out.left = left
    return out


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = serve(tmp_path / "data", "--bind", f"tcp://127.0.0.1:{port}")
    one_line_error(out, f"shardlog serve: tcp://127.0.0.1:{port} is already in use", "--bind")
    assert out.left == [], "the flush worker is gone with the front"


@pytest.mark.parametrize("bind, reason", [("tcp://127.0.0.1:port", "Invalid argument"),
                                          ("ipc:///nonexistent/dir/s", "No such file or directory")])
def test_serve_on_an_endpoint_it_cannot_bind(tmp_path, bind, reason):
    out = serve(tmp_path / "data", "--bind", bind)
    one_line_error(out, f"shardlog serve: cannot bind {bind}: {reason}", "; choose another --bind")
    assert out.left == []


def test_serve_with_a_metrics_port_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = serve(tmp_path / "data", "--bind", f"ipc://{tmp_path}/s", "--metrics-bind", f"127.0.0.1:{port}")
    assert out.left == [], "a worker outlived its front"
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert lines[0] == (f"shardlog serve: 127.0.0.1:{port} is already in use (another server running?); "
                        "choose another --metrics-bind"), out.stderr
    assert len(lines) == 1, out.stderr


def test_serve_on_a_path_under_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("not a directory")
    bad = tmp_path / "file.txt" / "sub"
    one_line_error(serve(bad, "--bind", f"ipc://{tmp_path}/s"), f"shardlog serve: data directory {bad}",
                   "Not a directory", "--data-dir")


def test_serve_on_a_file(tmp_path):
    bad = tmp_path / "file.txt"
    bad.write_text("not a directory")
    one_line_error(serve(bad, "--bind", f"ipc://{tmp_path}/s"), f"data directory {bad}", "not a directory",
                   "--data-dir")


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only file system (a tmpfs mounted ro; root only)."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                             capture_output=True, timeout=10)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=10)


@pytest.mark.parametrize("where", [".", "sub"])
def test_serve_on_a_read_only_directory(read_only_dir, tmp_path, where):
    bad = os.path.normpath(read_only_dir / where)
    line = one_line_error(serve(bad, "--bind", f"ipc://{tmp_path}/s"), f"data directory {bad}", "--data-dir")
    assert "Read-only file system" in line or "Permission denied" in line, line


def test_serve_the_same_directory_twice(tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data", tmp_path / "link")
    for other in (f"{tmp_path}/data/", tmp_path / "link"):
        out = serve(tmp_path / "data", "--data-dir", other, "--bind", f"ipc://{tmp_path}/s")
        line = one_line_error(out, f"data directory {tmp_path / 'data'} is given twice")
        assert "in use by another process" not in line


def test_dump_of_a_missing_directory():
    one_line_error(cli("dump", "/nonexistent/shardlog-data"), "shardlog dump:", "no such data directory",
                   "/nonexistent/shardlog-data")


def test_dump_of_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    one_line_error(cli("dump", tmp_path / "file.txt"), "shardlog dump:", "not a directory")


def test_export_of_a_missing_directory_creates_nothing(tmp_path):
    out = cli("export", "--data-dir", tmp_path / "typo", "--group", "1", tmp_path / "out")
    one_line_error(out, "shardlog export:", "no such data directory", str(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()


def test_keygen_under_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    one_line_error(cli("keygen", tmp_path / "file.txt" / "keys"), "shardlog keygen:", "Not a directory",
                   str(tmp_path / "file.txt" / "keys"))


def piped_into_head(command):
    """Run ``shardlog COMMAND | head -1`` in a shell; returns its stdout, stderr and shardlog's exit code."""
    line = " ".join(shlex.quote(str(a)) for a in [*SHARDLOG, *command])
    out = subprocess.run(["bash", "-c", f"{line} | head -1; exit ${{PIPESTATUS[0]}}"], capture_output=True,
                         text=True, env=ENV, timeout=60)
    return out


def test_dump_into_head_exits_quietly(tmp_path):
    with Store.open(tmp_path / "data") as store:
        g = store.group(1)
        for i in range(0, 4000, 100):  # output well past a pipe's buffer
            g.append([((1, j), b"payload") for j in range(i, i + 100)])
    out = piped_into_head(["dump", tmp_path / "data"])
    assert out.stdout.startswith("r-00_000"), out.stdout
    assert out.stderr == "", out.stderr
    assert out.returncode in (0, 141)


def test_top_into_head_exits_quietly(start_server):
    server = start_server()
    out = piped_into_head(["top", "--endpoint", server.endpoint, "--interval", "0.01", "--count", "100000"])
    assert out.stdout.strip(), out.stdout
    assert out.stderr == "", out.stderr
    assert out.returncode in (0, 141)


def test_stat_without_a_server_is_one_line(tmp_path):
    one_line_error(cli("stat", "--endpoint", f"ipc://{tmp_path}/nobody", "--timeout", "0.3"),
                   "shardlog stat:", "is a shardlog server running there?")
