-- One row per student with everything the dashboard API reads, as one JSON
-- payload (shape: streams.rows.dashboard_row), rewritten by the worker in the same
-- flush as the other aggregates. The API reads this single column of a single row
-- per request: small granules, so a point read decompresses a few rows, not 8,192.
CREATE TABLE IF NOT EXISTS student_dashboard
(
    student_id String,
    payload    String,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id
SETTINGS index_granularity = 32
