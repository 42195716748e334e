"""Tracing mode (SHARDLOG_TRACE): every step of a durable append is stamped, in order."""

import os
import time

from shardlog.workers import trace

STEPS = ["front.recv", "front.submit", "worker.recv", "worker.synced", "worker.published", "front.done",
         "front.replied"]


def test_each_step_of_a_durable_append_is_stamped_once_and_in_order(start_server, tmp_path):
    """The stamps share the machine's monotonic clock: those taken while the
    client waited for an append are that append's steps."""
    trace_dir = tmp_path / "trace"
    trace_dir.mkdir()
    server = start_server(env={"SHARDLOG_TRACE": str(trace_dir)})
    waits = []
    with server.client() as client:
        g = client.group(1)
        g.state()  # (the client's hello, first)
        for i in range(5):
            t0 = time.monotonic_ns()
            g.append([((1, i), b"x")], flush=True)
            waits.append((t0, time.monotonic_ns()))
    assert server.stop() == 0
    steps = {}
    for name in os.listdir(trace_dir):
        steps.update(trace.read(trace_dir / name))
    assert set(STEPS) <= set(steps), f"steps stamped: {sorted(steps)}"
    for t0, t1 in waits:
        during = {step: [t for t in steps[step] if t0 <= t <= t1] for step in STEPS}
        assert all(len(stamps) == 1 for stamps in during.values()), during
        order = [during[step][0] for step in STEPS]
        assert order == sorted(order)
