-- The layout of the keys a task row keeps that derive from its identity
-- (`setting`, `task_key`; spec/src/identity.rs). Layout 1 followed serde's
-- field order; the coordinator rewrites older rows to the current layout
-- when it opens the database, so that they meet the keys of tasks planned
-- now (a sweep extended after an upgrade keeps one setting per grid point).
ALTER TABLE tasks ADD COLUMN key_layout INTEGER NOT NULL DEFAULT 1;
