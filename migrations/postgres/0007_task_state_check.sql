-- A task's state is one of the names sweep_proto::TaskState spells; the
-- queue's statements write them through one template (store/sql/mod.rs),
-- and this keeps anything else, an operator's hand edit included, out.
ALTER TABLE tasks ADD CONSTRAINT tasks_state_known
    CHECK (state IN ('blocked', 'queued', 'leased', 'succeeded', 'failed', 'cancelled'));
