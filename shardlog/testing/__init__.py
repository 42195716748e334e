"""Helpers for tests, benchmarks and the torture: a reference model of a group, and
a server child process."""
