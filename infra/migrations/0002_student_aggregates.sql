-- Per-student aggregates, one current row per key (ReplacingMergeTree on version:
-- the worker rewrites the whole row when it changes; read with FINAL).

-- One row per (student, course): enrollment, first completions, reported progress, time.
CREATE TABLE IF NOT EXISTS student_courses
(
    student_id          String,
    course_id           String,
    enrolled            UInt8,
    first_enrolled_at   Nullable(DateTime64(3, 'UTC')),
    completed_lessons   UInt32,
    completion_times    Array(DateTime64(3, 'UTC')),
    reported_progress   Nullable(Float64),
    reported_progress_at Nullable(DateTime64(3, 'UTC')),
    time_spent_minutes  Float64,
    last_activity_at    Nullable(DateTime64(3, 'UTC')),
    updated_at          DateTime64(3, 'UTC'),
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (student_id, course_id);

-- One row per (student, learner-local date, course) with activity that day.
CREATE TABLE IF NOT EXISTS student_course_daily
(
    student_id          String,
    local_date          Date,
    course_id           String,
    minutes             Float64,
    lessons_completed   UInt32,
    completions         UInt32,
    quizzes_completed   UInt32,
    quiz_score_sum      Float64,
    points              Int32,
    first_completion_at Nullable(DateTime64(3, 'UTC')),
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (student_id, local_date, course_id);

-- One row per student: points, active days, level history, recent activity.
CREATE TABLE IF NOT EXISTS student_summary
(
    student_id          String,
    total_points        UInt32,
    level               UInt32,
    active_days         Array(Date),
    level_reached_at    Array(DateTime64(3, 'UTC')),
    last_event_at       DateTime64(3, 'UTC'),
    last_event_tz       String,
    events_counted      UInt64,
    recent_activity     String,
    updated_at          DateTime64(3, 'UTC'),
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id;

-- The course catalog (latest message per course wins; deleted = tombstone).
CREATE TABLE IF NOT EXISTS course_catalog
(
    course_id     String,
    title         String,
    total_lessons UInt32,
    deleted       UInt8,
    updated_at    DateTime64(3, 'UTC'),
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY course_id
