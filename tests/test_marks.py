"""The marks' ``synced``: how far the stream was known durable (workers/marks.py).
It may lag behind the fsync rounds by SYNCED_MARK_STEP while the writer is busy,
and a clean close writes it exactly."""

from shardlog.workers.marks import read_marks
from shardlog.workers.messages import WriteRequest
from shardlog.workers.writer import SYNCED_MARK_STEP, ChunkWriter


def _synced_after_each(writer, sizes):
    marks, at = [], 0
    for seq, size in enumerate(sizes, 1):
        writer.write_batch([WriteRequest(seq, 0, at, b"r" * size, True, 0)])
        writer.record_synced()
        at += size
        marks.append(read_marks(writer.data_dir)[1])
    return marks, at


def test_synced_is_written_once_it_moved_a_step_and_exactly_at_close(tmp_path):
    writer = ChunkWriter(tmp_path)
    step = SYNCED_MARK_STEP
    marks, end = _synced_after_each(writer, [100, step - 200, 150, 100])
    assert marks == [0, 0, step + 50, step + 50]
    writer.close()
    assert read_marks(str(tmp_path))[1] == end == step + 150


def test_synced_never_counts_a_batch_that_did_not_fsync(tmp_path):
    writer = ChunkWriter(tmp_path)
    writer.write_batch([WriteRequest(1, 0, 0, b"r" * 100, True, 0)])
    writer.write_batch([WriteRequest(2, 0, 100, b"r" * SYNCED_MARK_STEP, False, 0)])
    writer.record_synced()
    assert read_marks(str(tmp_path))[1] == 0
    writer.close()
    assert read_marks(str(tmp_path))[1] == 100
