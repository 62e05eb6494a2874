"""``infra.memory.keep_out``: pandas stays out of the worker, and pyarrow still converts."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from infra.memory import keep_out
assert keep_out("pandas")
import pyarrow as pa
from streams.row_encoding import arrow_block
table = arrow_block("student_dashboard", [["s1", "[1]", 7]])
assert table.num_rows == 1 and pa.array([1, 2]).to_pylist() == [1, 2]
assert "pandas" not in sys.modules, "pyarrow imported pandas"
try:
    import pandas  # noqa: F401
except ModuleNotFoundError as exc:
    assert exc.name == "pandas" and "infra.memory" in str(exc)
else:
    raise AssertionError("pandas was imported")
"""

ALREADY_IMPORTED = """
import pandas  # noqa: F401
from infra.memory import keep_out
assert keep_out("pandas") is False
import pandas.api  # noqa: F401  (still importable: it was in before)
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_keep_out_fails_the_import_and_pyarrow_converts_lists_without_it() -> None:
    done = run(CHECK)
    assert done.returncode == 0, done.stderr


def test_keep_out_leaves_a_package_that_is_already_imported() -> None:
    done = run(ALREADY_IMPORTED)
    assert done.returncode == 0, done.stderr
