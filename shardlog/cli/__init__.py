"""The command line: ``python -m shardlog serve | stat | top | dump | export | import | bench | keygen``."""
