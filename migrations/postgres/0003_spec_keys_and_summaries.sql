-- `sweep run` finds the sweep it started for a spec file by a hash of the
-- file's text (filled in by the coordinator for older sweeps), and people
-- name sweeps by name as well as by id.
ALTER TABLE sweeps ADD COLUMN spec_key TEXT NOT NULL DEFAULT '';

CREATE INDEX sweeps_by_key ON sweeps (spec_key, id);
CREATE INDEX sweeps_by_name ON sweeps (name, id);

-- The numbers of each succeeded task's summary ("figures" are charts).
ALTER TABLE task_figures RENAME TO summary_values;
