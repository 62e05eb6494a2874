-- Leaderboards (docs/api.md § Leaderboards, docs/architecture.md § Leaderboards).

-- The points of student_course_daily again, ordered by course and local date
-- instead of by student: a period's ranking reads only the rows of its dates
-- (and of its course), not every student's history. Filled by the materialized
-- view below in the same INSERT as student_course_daily (the worker's, and any
-- rebuild's), so the worker stays the only writer. Rows with 0 points are kept:
-- a late, earlier completion moves a lesson's 10 points to another day, and the
-- day it left must be rewritten with 0. Read with FINAL, like its source.
CREATE TABLE IF NOT EXISTS leaderboard_points
(
    course_id  LowCardinality(String),
    local_date Date,
    student_id String,
    points     Int32,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (course_id, local_date, student_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS leaderboard_points_mv TO leaderboard_points AS
SELECT course_id, local_date, student_id, points, version
FROM student_course_daily;

-- What was counted before this migration (the view sees only new inserts; a row
-- copied twice collapses into one, so running this again is harmless).
INSERT INTO leaderboard_points
SELECT course_id, local_date, student_id, points, version
FROM student_course_daily FINAL;

-- Whether a learner shows on leaderboards under a name of their choice (default:
-- not visible, shown as "Learner <rank>"). Written by the API's
-- PUT /api/leaderboard/me: data the learner gave, not derived from events.
-- version = the write's time in nanoseconds: the latest choice wins.
CREATE TABLE IF NOT EXISTS leaderboard_profiles
(
    student_id String,
    visible    UInt8,
    name       String,
    updated_at DateTime64(3, 'UTC'),
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY student_id
SETTINGS index_granularity = 256;
