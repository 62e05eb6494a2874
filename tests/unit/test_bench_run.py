"""``bench.run``'s clean-up: the engines' data goes, the logs and results stay."""

from __future__ import annotations

from pathlib import Path

from bench.run import drop_data


def test_drop_data_keeps_the_files_of_each_part_and_deletes_its_folders(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    ingest = tmp_path / "ingest"
    (ingest / "worker-data" / "store").mkdir(parents=True)
    (ingest / "worker-data" / "store" / "part.bin").write_bytes(b"x" * 1024)
    (ingest / "worker.log").write_text("batch: ...")
    (tmp_path / "reads").mkdir()
    (tmp_path / "reads" / "reads.json").write_text("{}")

    drop_data(tmp_path)

    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "ingest", "ingest/worker.log", "reads", "reads/reads.json", "results.json",
    ]  # fmt: skip
