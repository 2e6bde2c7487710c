-- Metric points and summary values are written only under a task's current
-- lease: the insert reads and locks the task's row in the same statement (or
-- transaction), so a row can never name a task that does not exist, and no
-- code deletes tasks. The foreign keys added nothing but a per-row check that
-- PostgreSQL runs as a query of its own: measured, it more than doubled the
-- cost of inserting a metric point. (SQLite checks its foreign keys in
-- process, where they cost little, and keeps them.)
ALTER TABLE metrics DROP CONSTRAINT IF EXISTS metrics_task_id_fkey;
ALTER TABLE summary_values DROP CONSTRAINT IF EXISTS task_figures_task_id_fkey;
