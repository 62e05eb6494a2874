"""Benchmark harness: scripts that print numbers, not timed tests.

``python -m bench.run [--quick]`` runs every part and prints one table
(metric | measured | reference/target | pass?); ``make bench`` / ``make bench-quick``
call it. Each part is also runnable alone (see each module's docstring).
"""
