"""The service: the front process (the one place where engine and sockets meet),
its settings, its metrics, CurveZMQ, and the supervision of the flush workers."""
