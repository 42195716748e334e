"""workers/frames.py: multipart sends and receives as pyzmq's, without its sugar."""

import pytest
import zmq

from shardlog.workers.frames import NOBLOCK, readable, recv_frames, send_frames


@pytest.fixture
def pair():
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.linger = b.linger = 0
    a.bind("inproc://frames")
    b.connect("inproc://frames")
    yield a, b
    a.close()
    b.close()
    ctx.term()


@pytest.mark.parametrize("frames", [[b"one"], [b"id", b"body"], [b"", b"x" * 100_000, b"three"]])
def test_what_is_sent_in_frames_is_received_in_the_same_frames(pair, frames):
    a, b = pair
    send_frames(a, frames)
    assert recv_frames(b) == frames
    send_frames(a, [memoryview(f) for f in frames], copy=False)  # buffers, without a copy, as the outbox sends
    assert recv_frames(b) == frames


def test_messages_keep_their_frames_apart(pair):
    a, b = pair
    send_frames(a, [b"1", b"2"])
    send_frames(a, [b"3"])
    assert recv_frames(b, NOBLOCK) == [b"1", b"2"]
    assert recv_frames(b, NOBLOCK) == [b"3"]


def test_readable_says_whether_a_receive_would_find_a_message(pair):
    a, b = pair
    assert not readable(b)
    with pytest.raises(zmq.Again):
        recv_frames(b, NOBLOCK)
    send_frames(a, [b"x", b"y"])
    assert readable(b)
    assert readable(b)  # asking does not take it
    assert recv_frames(b) == [b"x", b"y"]
    assert not readable(b)
