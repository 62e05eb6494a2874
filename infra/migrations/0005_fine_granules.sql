-- student_summary and student_state again, with granules of 256 rows instead of
-- 8,192. Their rows are ~1 KiB (recent activity, the whole state as JSON), so a
-- granule was ~8 MiB, and a merge reads one granule of every part it merges at
-- once: with 9 parts that was up to 212 MiB of the embedded engine's memory
-- (66 MiB with these granules; 1M events over 100k students, see BENCHMARKS.md).
-- Point reads by student (state loads, analysts' per-student queries) read less.
-- index_granularity cannot be altered, so the tables are copied and swapped.
CREATE TABLE IF NOT EXISTS student_summary_fine AS student_summary
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id
SETTINGS index_granularity = 256;

INSERT INTO student_summary_fine SELECT * FROM student_summary;

RENAME TABLE student_summary TO student_summary_coarse, student_summary_fine TO student_summary;

DROP TABLE student_summary_coarse;

CREATE TABLE IF NOT EXISTS student_state_fine AS student_state
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id
SETTINGS index_granularity = 256;

INSERT INTO student_state_fine SELECT * FROM student_state;

RENAME TABLE student_state TO student_state_coarse, student_state_fine TO student_state;

DROP TABLE student_state_coarse;
