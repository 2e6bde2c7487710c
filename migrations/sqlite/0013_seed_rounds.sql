-- Adaptive seeds (a spec's `seeds`): the coordinator's decision on each
-- question of a sweep (the settings that differ only on the compared axis)
-- after each round of seeds. The key makes a decision happen once, however
-- many replicas reach it: the one whose insert takes adds the round's
-- seeds in the same transaction. `deciding` says a sweep still has a
-- question open, so that it is not finished while its last round is decided.
CREATE TABLE seed_rounds (
    sweep_id   INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    question   TEXT   NOT NULL,
    seeds      INTEGER NOT NULL,
    outcome    TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, question, seeds)
);
ALTER TABLE sweeps ADD COLUMN deciding INTEGER NOT NULL DEFAULT 0;
