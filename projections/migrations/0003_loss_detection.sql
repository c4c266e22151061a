-- Loss detection (design.md §2 "Loss is detected, never absorbed"; ADR 0010).

-- Which stream the read models were built from: written by the projector in the same transaction
-- as its first checkpoint; changed only by `ledger restore` and `ledger accept-loss`.
CREATE TABLE integrity_baseline (
    stream          text PRIMARY KEY,
    stream_created  timestamptz NOT NULL,            -- StreamInfo.created of that stream
    high_water      bigint NOT NULL DEFAULT 0,       -- the highest last sequence the read side has seen
    epoch           integer NOT NULL DEFAULT 0,      -- bumped by each restore and accepted loss
    unrestored      text,                            -- what a restore could not put back, until accepted
    holding         text,                            -- an operator's restore under way: nothing is decided
    seal_key_id     text,                            -- events/chain.py seal_key_id of the key commits are sealed with
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- audit_trail: each commit's envelope beside its events (ledger_event), so `ledger restore` can put
-- the commit back byte for byte: the results (answers to repeats) and the seal.
CREATE TABLE ledger_commit (
    seq bigint PRIMARY KEY, subject text NOT NULL, person_key text, commit_id text NOT NULL,
    correlation_id text NOT NULL, results json NOT NULL, seal text NOT NULL
);

-- audit_trail: stream messages that are not commits the ledger sealed; never folded.
CREATE TABLE forged_message (
    seq bigint PRIMARY KEY, subject text NOT NULL, person_key text, reason text NOT NULL, bytes integer NOT NULL
);

-- Not projections: operators' decisions, kept across rebuilds and re-projections.
CREATE TABLE integrity_acceptance (
    id                    bigserial PRIMARY KEY,
    stream                text NOT NULL,
    accepted_at           timestamptz NOT NULL DEFAULT now(),
    reason                text NOT NULL,
    findings              jsonb NOT NULL,
    stream_created_before timestamptz,
    stream_created_after  timestamptz,
    high_water_before     bigint NOT NULL,
    last_seq              bigint NOT NULL,
    lost_events           integer NOT NULL,          -- audit-trail rows kept in integrity_lost_event
    event_seq             bigint                     -- the loss_accepted event on ledger.ref.integrity
);

-- What the read models held of the history an acceptance gave up (copied before re-projecting).
CREATE TABLE integrity_lost_event (acceptance_id bigint NOT NULL, LIKE ledger_event);
CREATE INDEX integrity_lost_event_person ON integrity_lost_event (person_key, seq);

CREATE TABLE integrity_restore (
    id            bigserial PRIMARY KEY,
    stream        text NOT NULL,
    restored_at   timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL,
    findings      jsonb NOT NULL,
    restored_upto bigint NOT NULL,                   -- last sequence put back (read models + old tail)
    not_restored  integer NOT NULL,                  -- sequences filled with a sequence_not_restored marker
    unrestored    text                               -- sequences past restored_upto the stream had held
);

-- The old stream's messages after the read models' copy, kept while `ledger restore` rebuilds the
-- stream: a restore stopped half way starts again from here, not from a stream it already deleted.
CREATE TABLE integrity_restore_tail (seq bigint PRIMARY KEY, subject text NOT NULL, data bytea, reason text);
