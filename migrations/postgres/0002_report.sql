-- Reports aggregate per swept setting without reading raw metrics.
-- `setting` is the task's parameters without its seeds (tasks that share it
-- are repetitions); `task_figures` holds the numbers of each succeeded task's
-- summary, written when it completes.

ALTER TABLE tasks ADD COLUMN setting TEXT NOT NULL DEFAULT '';

CREATE INDEX tasks_by_setting ON tasks (sweep_id, setting);

CREATE TABLE task_figures (
    task_id BIGINT           NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name    TEXT             NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task_id, name)
);
