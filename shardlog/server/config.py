"""Service settings from defaults, a TOML file, ``SHARDLOG_*`` variables and flags.

Later sources win: defaults < file < environment < command line. Every name
is the same in all four places (``chunk_max_size`` in the file,
``SHARDLOG_CHUNK_MAX_SIZE`` in the environment, ``--chunk-max-size`` on the
command line); ``data_dir`` is a list (repeat the flag, or separate paths
with ``,`` in the environment).
"""

import os
import tomllib

from shardlog.engine.settings import DEFAULTS as ENGINE_DEFAULTS
from shardlog.errors import InvalidArgument
from shardlog.workers.writer import SPARE_BYTES

MiB = 1 << 20
#: The reserve when ``disk_reserve_bytes`` is -1 (and the disk is not small).
DEFAULT_RESERVE = 64 * MiB

SERVICE_DEFAULTS = {
    "data_dir": ["./shardlog-data"],
    "bind": "tcp://127.0.0.1:7700",
    #: Requests larger than this get a TooLarge error; ZeroMQ drops the
    #: connection of a peer whose message exceeds it by more than 1 MiB.
    "max_message_size": 64 * MiB,
    #: One request (an append or a batch) carries at most this many entries
    #: and this many payload bytes; more is refused with TooLarge.
    "max_request_entries": 100_000,
    "max_request_bytes": 32 * MiB,
    #: A read reply holds at most this many entries / bytes; the rest is paged.
    "max_read_entries": 10_000,
    "max_read_bytes": 16 * MiB,
    #: Under this much free space, entries, user data and new groups are
    #: refused with DiskFull (ops that free space are still taken); -1: 64 MiB,
    #: or a 20th of a smaller disk.
    "disk_reserve_bytes": -1,
    #: Disk space each worker holds back (a file, SPARE) so that records that
    #: free space can be written once the disk is really full (a 64th of a
    #: smaller file system at most).
    "disk_spare_bytes": SPARE_BYTES,
    "heartbeat": 0.2,
    #: host:port for Prometheus metrics at /metrics ("" = off).
    "metrics_bind": "",
    "log_level": "INFO",
    #: CurveZMQ: the server's secret key file and the directory of the public
    #: key files of the clients it admits (both, or neither).
    "curve_secret_key": "",
    "curve_authorized_keys": "",
    #: Allow binding to a non-loopback address without CurveZMQ.
    "insecure": False,
    #: Testing only: lets a file in a data directory make its worker misbehave.
    "fault_injection": False,
    #: Testing only: RLIMIT_FSIZE of the workers (0: none), to make a disk "full".
    "worker_file_size_limit": 0,
}

DEFAULTS = {**ENGINE_DEFAULTS, **SERVICE_DEFAULTS}


def _convert(name, value, source):
    default = DEFAULTS[name]
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(value)
            return value
        return str(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{source}: {name} = {value!r} is not a valid "
                              f"{type(default).__name__}") from None


def load(flags=None, environ=None, config_file=None):
    """The merged settings; ``flags`` holds only the options given on the command line."""
    settings = dict(DEFAULTS)
    settings["data_dir"] = list(DEFAULTS["data_dir"])
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("SHARDLOG_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise InvalidArgument(f"cannot read config file {config_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"config file {config_file}: {exc}") from None
        for name, value in data.items():
            if name not in DEFAULTS:
                raise InvalidArgument(f"config file {config_file}: unknown setting {name!r}")
            settings[name] = _convert(name, value, config_file)
    for name in DEFAULTS:
        key = "SHARDLOG_" + name.upper()
        if key in environ:
            settings[name] = _convert(name, environ[key], key)
    for name, value in (flags or {}).items():
        if value is not None:
            settings[name] = _convert(name, value, "--" + name.replace("_", "-"))
    return settings


def engine_settings(settings):
    return {name: settings[name] for name in ENGINE_DEFAULTS}
