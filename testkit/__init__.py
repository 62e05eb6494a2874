"""What the tests and the benchmarks share: the independent reference of the metric rules,
the comparison of served dashboards with it, generated histories and workloads, the
ledger of counted events and the harness that runs a real stack and injects faults.

Imported by ``tests`` and ``bench``; imports neither.
"""
