-- A task's state is one of the names sweep_proto::TaskState spells; the
-- queue's statements write them through one template (store/sql/mod.rs),
-- and this keeps anything else, an operator's hand edit included, out.
-- SQLite cannot add a CHECK to a table that exists, and rebuilding `tasks`
-- would cascade-delete the rows that reference it (foreign keys are on and
-- cannot be switched off inside the migration's transaction), so two
-- triggers check what a CHECK would.
CREATE TRIGGER tasks_state_known_insert BEFORE INSERT ON tasks
WHEN NEW.state NOT IN ('blocked', 'queued', 'leased', 'succeeded', 'failed', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tasks_state_known');
END;

CREATE TRIGGER tasks_state_known_update BEFORE UPDATE OF state ON tasks
WHEN NEW.state NOT IN ('blocked', 'queued', 'leased', 'succeeded', 'failed', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: tasks_state_known');
END;
