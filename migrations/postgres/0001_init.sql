-- Times are milliseconds since the Unix epoch, read from the database's own
-- clock, so that several coordinator replicas agree on when a lease expires.
-- JSON is stored as text: the same schema and queries serve the SQLite store,
-- and reports cast with ::jsonb where they need to look inside.

CREATE TABLE sweeps (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL,
    experiment    TEXT   NOT NULL,
    spec_toml     TEXT   NOT NULL,
    spec_json     TEXT   NOT NULL,
    priority      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- A sweep's state is derived from its tasks' states; only a cancel is
    -- recorded, because it cannot be derived.
    cancelled_at  BIGINT
);

CREATE TABLE tasks (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sweep_id         BIGINT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    ordinal          BIGINT NOT NULL,
    kind             TEXT   NOT NULL,
    params           TEXT   NOT NULL,
    requires         TEXT   NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    state            TEXT   NOT NULL,
    attempt          BIGINT NOT NULL DEFAULT 0,
    handbacks        BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    lease_owner      BIGINT,
    lease_token      TEXT,
    lease_expires_at BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    summary          TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    UNIQUE (sweep_id, ordinal)
);

CREATE INDEX tasks_queued ON tasks (priority DESC, id) WHERE state = 'queued';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE state = 'leased';
CREATE INDEX tasks_by_sweep ON tasks (sweep_id, state);

CREATE TABLE task_deps (
    task_id    BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    PRIMARY KEY (task_id, depends_on)
);

CREATE INDEX task_deps_by_dependency ON task_deps (depends_on);

CREATE TABLE workers (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT   NOT NULL,
    host              TEXT   NOT NULL,
    backend           TEXT   NOT NULL,
    devices           TEXT   NOT NULL,
    slots             BIGINT NOT NULL,
    version           TEXT   NOT NULL,
    registered_at     BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL
);

CREATE TABLE metrics (
    task_id BIGINT           NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt BIGINT           NOT NULL,
    name    TEXT             NOT NULL,
    step    BIGINT           NOT NULL,
    epoch   BIGINT,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task_id, attempt, name, step)
);

CREATE TABLE artifacts (
    task_id    BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    name       TEXT   NOT NULL,
    encoding   TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, attempt, name)
);
