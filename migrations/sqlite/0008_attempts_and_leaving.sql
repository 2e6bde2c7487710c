-- The attempts of a task that ended without success (failed, lease expired,
-- handed back, cancelled), each written once, when it ends. The latest
-- attempt is the task's own row: `lease_owner` now stays set after a lease
-- ends (the worker of the latest attempt) and `attempt_started_at` says when
-- it began. A lease followed by a success, the queue's busy path, writes
-- nothing here.
CREATE TABLE attempts (
    task_id    INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    worker_id  INTEGER,
    started_at INTEGER,
    ended_at   INTEGER NOT NULL,
    outcome    TEXT   NOT NULL,
    error      TEXT,
    PRIMARY KEY (task_id, attempt)
);

ALTER TABLE tasks ADD COLUMN attempt_started_at INTEGER;

-- When a worker said it was stopping (a clean shutdown, its tasks handed
-- back), so that listings tell it from one that went silent.
ALTER TABLE workers ADD COLUMN stopped_at INTEGER;
