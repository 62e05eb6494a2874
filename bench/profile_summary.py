"""Summarise a py-spy ``--format raw`` profile: where the busy samples are.

``python -m bench.profile_summary PROFILE.txt [--top 25] [--match streams/]``
prints the share of busy samples (idle waits in selectors, locks and queues are
left out) spent in each function itself (self) and below it (inclusive), and
with ``--match`` only frames whose file contains the text (e.g. the project's
own ``streams/`` code). py-spy writes these files with ``record --format raw``
(the bench does so with ``--profile``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

IDLE = ("select (selectors", "Condition.wait", "Queue.get", "_wait_for_tstate_lock",
        "Event.wait", "sleep (")  # fmt: skip


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """(busy samples, samples per function itself, samples per function inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = 0
    for line in path.read_text(errors="replace").splitlines():
        if " " not in line:
            continue
        stack, count_text = line.rsplit(" ", 1)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        if not frames or any(mark in frames[-1] for mark in IDLE):
            continue
        count = int(count_text)
        busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return busy, own, inclusive


def report(path: Path, top: int = 25, match: str = "") -> str:
    busy, own, inclusive = summarise(path)
    if not busy:
        return f"{path}: no busy samples"
    lines = [f"{path.name}: {busy} busy samples", "self:"]
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in own.most_common(top) if match in f]
    lines.append("inclusive:")
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in inclusive.most_common(top * 4) if match in f][
        :top
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames containing this text")
    args = parser.parse_args(argv)
    print(report(args.profile, args.top, args.match))
    return 0


if __name__ == "__main__":
    sys.exit(main())
