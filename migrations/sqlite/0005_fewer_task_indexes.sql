-- Every change of a task's state writes a new version of its row, and with
-- it an entry in each of the table's indexes (the state is indexed, so the
-- update is never HOT). The queue changes a task's state twice per attempt;
-- these two indexes served only per-sweep reads (status counts, cancel,
-- retry, the report's grouping by setting), which the (sweep_id, ordinal)
-- key already narrows to the sweep's rows and which read those rows anyway.
DROP INDEX IF EXISTS tasks_by_sweep;
DROP INDEX IF EXISTS tasks_by_setting;
