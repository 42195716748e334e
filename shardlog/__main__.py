"""``python -m shardlog``: the command line (shardlog/cli/main.py)."""

import sys

from shardlog.cli.main import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m shardlog"))
