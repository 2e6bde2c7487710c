-- Results are content-addressed (spec/src/result_key.rs). `task_key` is the
-- hash of a task's planned parameters, set at submit (NULL: the sweep was
-- submitted with --no-cache); `result_key` completes it with the data, the
-- backend and the result version where the task is about to train.
-- `cached_from` names the task whose results a task points at instead of
-- training (NULL: it trained, or has not ended).
ALTER TABLE tasks ADD COLUMN task_key TEXT;
ALTER TABLE tasks ADD COLUMN result_key TEXT;
ALTER TABLE tasks ADD COLUMN cached_from INTEGER;
CREATE INDEX tasks_cached_from ON tasks (cached_from) WHERE cached_from IS NOT NULL;

-- The number a worker's training code bumps whenever it changes results.
ALTER TABLE workers ADD COLUMN result_version INTEGER NOT NULL DEFAULT 0;

-- How many artifacts a task's succeeded attempt stored, counted when it
-- succeeded: a result that lost one since (or all its metric points) is no
-- longer used.
ALTER TABLE tasks ADD COLUMN artifact_count INTEGER;

-- One row per result key: the task that trains it (leased) or trained it
-- (succeeded). A task whose key is here and succeeded is the result other
-- tasks with that key point at.
CREATE TABLE results (
    key        TEXT   PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE INDEX results_by_task ON results (task_id);
