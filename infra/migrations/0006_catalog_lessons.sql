-- The lessons a catalog entry lists (docs/api.md § Course catalog). lessons_listed = 1
-- when the entry has a list (an empty one included), 0 when it has none: then any lesson
-- id counts. Entries written before keep 0.
ALTER TABLE course_catalog ADD COLUMN IF NOT EXISTS lessons Array(String) AFTER total_lessons;

ALTER TABLE course_catalog ADD COLUMN IF NOT EXISTS lessons_listed UInt8 DEFAULT 0 AFTER lessons
