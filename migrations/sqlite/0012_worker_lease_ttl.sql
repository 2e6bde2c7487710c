-- How long the worker's leases live, as the coordinator it registered with
-- set it: a worker silent for longer is lost. Kept per worker so that a
-- reader of the database (`sweep dashboard`, `sweep workers` over a
-- database) judges liveness as that coordinator does, without its config.
-- Workers registered before this column get the default lease TTL.
ALTER TABLE workers ADD COLUMN lease_ttl_ms INTEGER NOT NULL DEFAULT 30000;
