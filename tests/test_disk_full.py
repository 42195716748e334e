"""A really full disk, on a loop-mounted 64 MiB ext4 (root only; skipped elsewhere).

The injected-ENOSPC tests (test_flush, test_service) cover the rules
everywhere; these check them against a real file system's ENOSPC.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from shardlog import DiskFull

from .service import poll_for

ENTRY = b"e" * 4000


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("loop-mounting a small file system needs root")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True, timeout=60)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, timeout=60)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=60)


def fill(group, first):
    """Append 4 KB entries (durable) until the disk refuses; the index of the last acknowledged."""
    i = first
    with pytest.raises(DiskFull):
        while True:
            group.append([((1, i), ENTRY)], flush=True)
            i += 1
    return i - 1


def test_a_full_disk_still_takes_purge_and_drop_group_then_writes_again(start_server, small_disk):
    data = small_disk / "data"
    server = start_server([data], "--chunk-max-size", str(4 << 20))  # (the test server has no reserve)
    with server.client(timeout=30) as client:
        client.group(2).append([((1, 0), b"other")], flush=True)
        group = client.group(1)
        last = fill(group, 0)
        assert last > 1000, "the disk took entries until it was full"
        disk = client.stat()["disks"][0]
        assert disk["low"] and "spare" in disk["low"] and not disk["failed"], disk
        with pytest.raises(DiskFull, match="purge or drop groups"):
            client.group(3).save_vote((1, 1))  # a new group goes nowhere
        group.commit((1, last), flush=True)
        group.purge((1, last - 100), flush=True)  # frees the chunks below
        client.drop_group(2)
        assert poll_for(lambda: client.stat()["disks"][0]["low"] is None, 10), "the spare is held again"
        group.append([((1, last + 1), ENTRY)], flush=True)
        kept = [log_id for log_id, _ in group.read(0, last + 2)]
        assert kept == [(1, i) for i in range(last - 99, last + 2)]
    assert server.stop() == 0
    server = start_server([data])
    with server.client() as client:
        assert [log_id for log_id, _ in client.group(1).read(0, last + 2)] == kept
        assert client.groups() == [1]


def test_sigterm_on_a_full_disk_exits_and_loses_nothing_acknowledged(start_server, small_disk):
    """With no spare, the first ENOSPC leaves the disk full: flushes get
    DiskFull and writes wait in memory. Before, SIGTERM then hung past 60 s."""
    data = small_disk / "data"
    server = start_server([data], "--chunk-max-size", str(4 << 20), "--disk-spare-bytes", "0")
    with server.client(timeout=30) as client:
        group = client.group(1)
        last = fill(group, 0)
        assert client.stat()["disks"][0]["full"]
        # Full past any spare, the disk takes nothing: what it took could not be made durable.
        with pytest.raises(DiskFull):
            client.drop_group(1)
        with pytest.raises(DiskFull):
            group.purge((1, 5), flush=True)
        assert client.groups() == [1] and group.state().purged is None, "the refusals left no trace"
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5, "a full disk does not hold up the stop"
    assert server.stop() == 0
    assert "not durable" in server.log()
    server = start_server([data])
    with server.client() as client:
        entries = [log_id for log_id, _ in client.group(1).read(0, last + 1)]
        assert entries == [(1, i) for i in range(last + 1)], "every acknowledged entry is there"


def test_a_failed_fsync_is_never_retried_on_the_spare(tmp_path):
    """Only a write that found the disk full is done again after the spare
    goes: after a failed fsync the page cache may have dropped the bytes."""
    import errno

    from shardlog.workers.messages import WriteRequest
    from shardlog.workers.writer import SPARE_FILE, ChunkWriter, SyncFailed

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = ChunkWriter(tmp_path, fsync=fsync, spare_bytes=1 << 16)
    assert (tmp_path / SPARE_FILE).exists()
    with pytest.raises(SyncFailed):
        writer.write_batch([WriteRequest(1, 0, 0, b"abc", True)])
    assert (tmp_path / SPARE_FILE).exists() and writer.synced == 0
