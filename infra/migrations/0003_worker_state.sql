-- The worker's per-student state (internal): restored from here after a restart,
-- because the embedded broker keeps nothing. One row per student, latest version wins.
CREATE TABLE IF NOT EXISTS student_state
(
    student_id      String,
    kafka_partition UInt16,
    state           String CODEC(ZSTD(1)),
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id;

-- Every rejected message with its reason (also sent to topic learning-events-dlq).
CREATE TABLE IF NOT EXISTS dead_letters
(
    received_at     DateTime64(3, 'UTC'),
    topic           LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset    UInt64,
    message_key     String,
    reason          String,
    field           Nullable(String),
    payload         String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY received_at
