-- The newest checkpoint of each task (worker/src/checkpoint.rs), written
-- whole under the lease of the attempt that took it and replacing the one
-- before; the next attempt resumes from it. `watermarks` (JSON: metric name
-- to the last step that attempt had sent when it took the checkpoint) says
-- which of its points the resumed attempt's series keeps.
CREATE TABLE checkpoints (
    task_id    BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    step       BIGINT NOT NULL,
    watermarks TEXT   NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- The step of the task's checkpoint, when it has one: a completion sees
-- whether there is one to delete without reading `checkpoints`.
ALTER TABLE tasks ADD COLUMN checkpoint_step BIGINT;

-- The step an attempt started from: its checkpoint's, 0 for a fresh start.
ALTER TABLE tasks ADD COLUMN resumed_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN resumed_from BIGINT NOT NULL DEFAULT 0;
