"""A short run of scripts/torture.py: kills, simulated power loss, nothing acknowledged lost."""

import importlib.util
import os

from .service import ROOT


def load_torture():
    spec = importlib.util.spec_from_file_location("torture", os.path.join(ROOT, "scripts", "torture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_torture(tmp_path, capsys):
    torture = load_torture()
    code = torture.main(["--cycles", "4", "--seed", "7", "--max-load", "0.6", "--groups", "12",
                         "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cycles=4" in out and "lost=0" in out
    assert os.listdir(tmp_path) == [], "the harness cleans up after itself"
