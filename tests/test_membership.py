"""Each data directory records the store it belongs to: a subset of a server's directories,
or directories of two servers, are refused before anything is written."""

import os
import random
import shutil
import subprocess
import sys

import pytest

from shardlog import InvalidArgument, LogState, Store
from shardlog.engine import membership
from shardlog.engine.membership import STORE_FILE
from shardlog.testing.simfs import SimFiles, SimulatedCrash, open_store

from .test_cli_errors import ENV, cli, one_line_error
from .test_compat import REFERENCE


def record_of(path):
    return (path / STORE_FILE).read_bytes()


@pytest.fixture
def two(tmp_path):
    """A store of data directories a and b, group 1 on a and group 2 on b."""
    a, b = tmp_path / "a", tmp_path / "b"
    with Store.open([a, b]) as store:
        store.group(1).save_vote((1, 1))
        store.group(2).save_vote((2, 2))
        assert store._groups[1].disk.path == str(a) and store._groups[2].disk.path == str(b)
    return a, b


def test_a_subset_of_a_stores_directories_is_refused(two):
    a, b = two
    before = record_of(a), record_of(b)
    for given, missing in ((b, a), (a, b)):
        with pytest.raises(InvalidArgument) as err:
            Store.open(given)
        assert f"{missing} not given" in str(err.value)
        assert f"give every --data-dir of the server: {a}, {b}" in str(err.value)
    assert (record_of(a), record_of(b)) == before
    with Store.open([b, a]) as store:  # in any order
        assert store.group(1).state() == LogState(vote=(1, 1))
        assert store.group(2).state() == LogState(vote=(2, 2))


def test_a_new_directory_joins_and_then_belongs(two, tmp_path):
    a, b = two
    c = tmp_path / "c"
    with Store.open([a, b, c]) as store:
        store.group(3).save_vote((3, 3))
        assert store._groups[3].disk.path == str(c)
    with pytest.raises(InvalidArgument, match=f"{c} not given") as err:
        Store.open([a, b])
    assert f"give every --data-dir of the server: {a}, {b}, {c}" in str(err.value)
    with Store.open([a, b, c]) as store:
        assert store.group(3).state() == LogState(vote=(3, 3))


def test_the_file_is_written_only_when_the_membership_changes(two):
    a, b = two
    before = record_of(a), record_of(b)
    for _ in range(2):
        Store.open([a, b]).close()
    assert (record_of(a), record_of(b)) == before


def test_directories_of_two_stores_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    Store.open(a).close()
    Store.open(b).close()
    with pytest.raises(InvalidArgument, match=f"{a} and {b} belong to different stores"):
        Store.open([a, b])
    Store.open(a).close()  # nothing stays locked


def test_directories_of_older_versions_are_adopted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with Store.open([a, b]) as store:
        store.group(1).save_vote((1, 1))
    for d in (a, b):
        (d / STORE_FILE).unlink()
    with Store.open([a, b]) as store:
        assert store.group(1).state() == LogState(vote=(1, 1))
    assert (a / STORE_FILE).exists() and (b / STORE_FILE).exists()
    with pytest.raises(InvalidArgument, match="not given"):
        Store.open(b)


def test_a_member_without_its_file_is_refused_as_an_unmounted_disk(two):
    """An unmounted disk leaves an empty mount point at the member's path:
    adopting it would let the store open without the disk's groups."""
    a, b = two
    shutil.rmtree(b)
    b.mkdir()
    with pytest.raises(InvalidArgument, match="is its disk mounted"):
        Store.open([a, b])
    assert not (b / STORE_FILE).exists(), "nothing written"


def test_a_moved_directory_is_the_same_member(two, tmp_path):
    a, b = two
    moved = tmp_path / "moved"
    os.rename(a, moved)
    with pytest.raises(InvalidArgument, match=f"{a} not given"):  # named where it was last seen
        Store.open(b)
    with Store.open([moved, b]) as store:
        assert store.group(1).state() == LogState(vote=(1, 1))
    with pytest.raises(InvalidArgument, match=f"{moved} not given"):
        Store.open(b)


def test_a_copy_beside_its_original_is_refused(two, tmp_path):
    a, b = two
    shutil.copytree(a, tmp_path / "copy")
    with pytest.raises(InvalidArgument, match=f"{a} and {tmp_path / 'copy'} are copies of one data directory"):
        Store.open([a, b, tmp_path / "copy"])


def test_the_same_directory_by_another_name_is_given_twice(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "link")
    with pytest.raises(InvalidArgument, match=f"data directory {tmp_path / 'a'} is given twice"):
        Store.open([tmp_path / "a", tmp_path / "link"])
    with pytest.raises(InvalidArgument, match="is given twice"):
        Store.open([tmp_path / "a", f"{tmp_path}/a/"])


def test_a_torn_update_leaves_the_previous_record(two, tmp_path):
    a, b = two
    with open(a / STORE_FILE, "ab") as f:
        f.write(b'{"store": "torn')
    with pytest.raises(InvalidArgument, match="not given"):
        Store.open(a)
    Store.open([a, b, tmp_path / "c"]).close()  # an update after the torn bytes is read back
    with pytest.raises(InvalidArgument, match=f"{tmp_path / 'c'} not given"):
        Store.open([a, b])


def test_power_loss_while_a_directory_joins():
    """At every file operation of an open that adds a directory, power is lost: each
    directory keeps its old record or gets the new one, and the store opens again."""
    a, b, c = "/sim/a", "/sim/b", "/sim/c"
    base = SimFiles()
    open_store(base, [a, b]).close()
    total = None
    for crash_at in range(1, 1000):
        fs = base.after_crash()  # (a copy: nothing pending)
        fs.crash_at = fs.ops + crash_at
        try:
            open_store(fs, [a, b, c]).close()
        except SimulatedCrash:
            pass
        if not fs.crashed:
            total = crash_at
            break
        disk = fs.after_crash(random.Random(crash_at))
        for d in (a, b):
            assert membership.read_record(d, disk)["members"], "a record survives whole"
        open_store(disk, [a, b, c]).close()
        with pytest.raises(InvalidArgument, match="not given"):
            open_store(disk, [a])
    assert total is not None and total > 5


def test_import_into_part_of_a_server_is_refused(two, tmp_path):
    a, b = two
    out = cli("import", "--data-dir", b, "--group", "1", REFERENCE / "raft-log")
    one_line_error(out, "shardlog import:", f"{a} not given", f"give every --data-dir of the server: {a}, {b}")
    config = tmp_path / "server.toml"
    config.write_text(f'data_dir = ["{a}", "{b}"]\n')
    out = cli("import", "--config", config, "--group", "3", REFERENCE / "raft-log")
    assert out.returncode == 0, out.stderr
    out = cli("export", "--data-dir", a, "--group", "3", tmp_path / "out")
    one_line_error(out, "shardlog export:", f"{b} not given")
    out = cli("export", "--config", config, "--group", "3", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert any(n.endswith(".wal") for n in os.listdir(tmp_path / "out"))
    with Store.open([a, b]) as store:
        assert store.group(1).state() == LogState(vote=(1, 1))
        assert store.group(3).state().last == (2, 7)


@pytest.mark.parametrize("command", ["import", "export"])
def test_import_and_export_help_says_give_every_data_dir(command):
    out = subprocess.run([sys.executable, "-m", "shardlog", command, "--help"], capture_output=True, text=True,
                         env=ENV, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "every --data-dir of the server" in text and "--config" in text
