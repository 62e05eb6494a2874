-- Every counted event, once per (student_id, event_id) after merges.
-- Written by the worker in the same flush as the aggregates; batch_version is the
-- flush that wrote the row (the worker uses it to recognise old duplicates).
CREATE TABLE IF NOT EXISTS learning_events
(
    event_id           String,
    student_id         String,
    type               LowCardinality(String),
    course_id          String,
    module_id          Nullable(String),
    lesson_id          Nullable(String),
    quiz_id            Nullable(String),
    occurred_at        DateTime64(3, 'UTC'),
    local_date         Date,
    timezone           LowCardinality(String),
    completed          UInt8,
    time_spent_minutes Float64,
    progress           Nullable(Float64),
    score              Nullable(Float64),
    kafka_partition    UInt16,
    kafka_offset       UInt64,
    ingested_at        DateTime64(3, 'UTC'),
    batch_version      UInt64
)
ENGINE = ReplacingMergeTree(batch_version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (student_id, event_id)
