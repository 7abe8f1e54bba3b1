"""Helpers shared by the test suite (importable as ``support.*``: setup.cfg puts tests/ on sys.path).

- ``dsutil``: builds small real datasets with the shard contract (no sharder involved).
- ``httpserver``: a local Range-capable HTTP server in its own process, optionally flaky.
- ``hierarchy_reference``: pure-Python reference implementations of the hierarchy math.
"""
