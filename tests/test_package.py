"""What installing shardlog gives a user: its names, its files, its commands."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import shardlog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info")


def test_the_clients_come_from_the_top_level():
    from shardlog import AsyncClient, Client
    from shardlog.client import AsyncClient as AsyncClientToo
    from shardlog.client import Client as ClientToo

    assert (Client, AsyncClient) == (ClientToo, AsyncClientToo)
    assert {"Client", "AsyncClient", "Store"} <= set(shardlog.__all__)


def test_the_wheel_holds_only_shardlog(tmp_path):
    """The flush workers install as shardlog.workers: no global ``workers`` module, and py.typed ships."""
    source = tmp_path / "source"  # a build writes build/ beside pyproject.toml: not in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "shardlog", "workers"):
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), source / name, **({"ignore": IGNORED} if copy is shutil.copytree else {}))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                          "--wheel-dir", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    [wheel] = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"shardlog"}, tops
    assert "shardlog/workers/writer.py" in names and "shardlog/workers/__main__.py" in names
    assert "shardlog/py.typed" in names


def run(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


def test_version_and_the_name_each_command_goes_by():
    script = os.path.join(sysconfig.get_path("scripts"), "shardlog")
    by_script = run(script, "--version")
    assert by_script.returncode == 0 and by_script.stdout.startswith("shardlog 0."), by_script
    by_module = run(sys.executable, "-m", "shardlog", "--version")
    assert by_module.stdout.startswith("python -m shardlog 0."), by_module
    assert run(script, "stat", "--help").stdout.startswith("usage: shardlog stat")
    assert run(sys.executable, "-m", "shardlog", "stat", "--help").stdout.startswith("usage: python -m shardlog stat")
