-- How many tasks wait on each task, and on how many each task waits, kept
-- on the task's row so that the hot paths (claiming a task, ending an
-- attempt) skip the dependency tables for the many tasks that have none.
ALTER TABLE tasks ADD COLUMN dependents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN dependencies BIGINT NOT NULL DEFAULT 0;

UPDATE tasks SET
    dependents = (SELECT count(*) FROM task_deps WHERE task_deps.depends_on = tasks.id),
    dependencies = (SELECT count(*) FROM task_deps WHERE task_deps.task_id = tasks.id)
WHERE id IN (SELECT task_id FROM task_deps UNION SELECT depends_on FROM task_deps);
