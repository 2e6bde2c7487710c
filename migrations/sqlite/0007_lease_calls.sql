-- The worker's number for the lease call that made a task's current lease: a
-- call made again after its answer was lost gets the leases it made back
-- (store/sql/queue.rs, claim). Read only through the tasks_leased partial
-- index's rows, so it needs no index of its own.
ALTER TABLE tasks ADD COLUMN lease_call INTEGER NOT NULL DEFAULT 0;
