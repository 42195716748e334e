import pytest

from shardlog import InvalidArgument
from shardlog.cli.main import build_parser
from shardlog.server.config import DEFAULTS, load


def flags_of(argv):
    args = build_parser().parse_args(["serve", *argv])
    return {k: v for k, v in vars(args).items() if k in DEFAULTS}, args.config


def test_defaults_work_at_once():
    settings = load({}, environ={})
    assert settings["data_dir"] == ["./shardlog-data"]
    assert settings["bind"] == "tcp://127.0.0.1:7700"


def test_flags_win_over_environment_over_file(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('bind = "tcp://127.0.0.1:1"\nchunk_max_records = 10\ncache_max_items = 5\n'
                   'data_dir = ["/f1", "/f2"]\n')
    env = {"SHARDLOG_CHUNK_MAX_RECORDS": "20", "SHARDLOG_CACHE_MAX_ITEMS": "6",
           "SHARDLOG_DATA_DIR": "/e1,/e2"}
    flags, config = flags_of(["--config", str(cfg), "--cache-max-items", "7", "--data-dir", "/x"])
    settings = load(flags, environ=env, config_file=config)
    assert settings["bind"] == "tcp://127.0.0.1:1"  # file only
    assert settings["chunk_max_records"] == 20  # environment over file
    assert settings["cache_max_items"] == 7  # flag over environment
    assert settings["data_dir"] == ["/x"]
    settings = load({}, environ=env, config_file=config)
    assert settings["data_dir"] == ["/e1", "/e2"]


@pytest.mark.parametrize("text, match", [
    ("chunk_max_recrods = 3\n", "unknown setting 'chunk_max_recrods'"),
    ("chunk_max_records = 'many'\n", "chunk_max_records"),
    ("bind = \n", "s.toml"),
])
def test_bad_config_file(tmp_path, text, match):
    cfg = tmp_path / "s.toml"
    cfg.write_text(text)
    with pytest.raises(InvalidArgument, match=match):
        load({}, environ={}, config_file=str(cfg))


def test_bad_environment():
    with pytest.raises(InvalidArgument, match="SHARDLOG_INSECURE"):
        load({}, environ={"SHARDLOG_INSECURE": "maybe"})


def test_non_loopback_bind_needs_insecure(tmp_path):
    from shardlog.server.front import Front

    settings = load({"bind": "tcp://0.0.0.0:7799", "data_dir": [str(tmp_path / "d")]}, environ={})
    with pytest.raises(InvalidArgument, match="--insecure"):
        Front(settings)
