"""Write a wrong aggregate straight into ClickHouse, as a bug or a hand edit would.

``tamper(data_dir, student)`` runs in a child process (the embedded engine allows
one process per data directory: the stack must be stopped) and writes a newer
``student_dashboard`` row for ``student`` whose payload has 50 points more and
one completed lesson more in its first course. The worker's state is untouched,
so only a check against the counted events can see it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def tamper(data_dir: Path, student: str) -> None:
    """Run ``main`` in a child process (the stack must be stopped)."""
    subprocess.run(
        [sys.executable, "-m", "testkit.tamper", str(data_dir), student],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(data_dir: str, student: str) -> None:
    from infra.clickhouse import connect

    client = connect(f"chdb://{Path(data_dir).resolve() / 'clickhouse'}")
    ((payload, version),) = client.query(
        "SELECT payload, version FROM student_dashboard FINAL WHERE student_id = {s:String}",
        parameters={"s": student},
    ).result_rows
    data = orjson.loads(payload)
    data[0] += 50  # total points
    data[5][0][3] += 1  # completed lessons of the first course
    client.insert(
        "student_dashboard",
        [[student, orjson.dumps(data).decode(), version + 1]],
        column_names=["student_id", "payload", "version"],
    )
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
