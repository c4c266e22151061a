-- Read models of the claims ledger (design.md §4). Rebuilt at will from stream LEDGER:
-- nothing here is a source of truth except dead_letter_redrive and audit_job.
-- Money is numeric(14,2); formula inputs (bases, ratios, thresholds) are exact numeric.

CREATE TABLE projection_checkpoint (
    projection  text PRIMARY KEY,
    seq         bigint NOT NULL DEFAULT 0,       -- last stream sequence folded into the live tables
    generation  integer NOT NULL DEFAULT 0,      -- bumped when a rebuild swaps its tables in
    owner       text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projection_rebuild (
    projection  text PRIMARY KEY,
    schema_name text NOT NULL,
    status      text NOT NULL,                   -- running | swapped | failed
    seq         bigint NOT NULL DEFAULT 0,
    target_seq  bigint NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error       text
);

-- claims --------------------------------------------------------------------------------
CREATE TABLE settlement (
    setl_id text NOT NULL, person_key text NOT NULL, mdtrt_id text, admdvs text, year integer,
    med_type text, inpatient boolean, insutype text, fixmedins_code text, begndate date, enddate date,
    setl_time timestamptz, dise_codg text, pack text, pack_version text, status text,
    medfee_sumamt numeric(14,2), fulamt_ownpay_amt numeric(14,2), inscp_scp_amt numeric(14,2),
    hifp_pay numeric(14,2), oth_pay numeric(14,2), oop numeric(14,2), remaining numeric(14,2),
    ci_base_added numeric(14,2), assist_base_added numeric(14,2),
    hifmi_pay numeric(14,2), maf_pay numeric(14,2), hosp_part_amt numeric(14,2), psn_part_amt numeric(14,2),
    maf_adjusted numeric(14,2) NOT NULL DEFAULT 0,  -- paid later (retroactive status, year end)
    cancelled boolean, cancel_time timestamptz,
    seq bigint, event_id text, recorded_at timestamptz,
    PRIMARY KEY (setl_id, person_key)
);
CREATE INDEX settlement_person ON settlement (person_key, year);
CREATE INDEX settlement_area ON settlement (admdvs, enddate);

CREATE TABLE settlement_line (
    seq bigint NOT NULL, idx integer NOT NULL, setl_id text NOT NULL, person_key text NOT NULL,
    kind text NOT NULL,                               -- payment | adjustment | reversal (amount < 0)
    fund text NOT NULL, rule_id text NOT NULL, clause text NOT NULL,
    base numeric, ratio numeric, threshold numeric,   -- 大病: threshold = deductible
    cumulative_before numeric, formula_amount numeric(14,2), counter text,
    cap_limit numeric(14,2), cap_used_before numeric(14,2),  -- 大病: cap and paid before
    amount numeric(14,2) NOT NULL, adjustment text, pack text, pack_version text,
    event_id text, recorded_at timestamptz,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX settlement_line_setl ON settlement_line (setl_id, person_key);

CREATE TABLE fund_flow (
    admdvs text NOT NULL, fund text NOT NULL, month date NOT NULL,
    amount numeric(14,2) NOT NULL DEFAULT 0, lines integer NOT NULL DEFAULT 0,
    PRIMARY KEY (admdvs, fund, month)
);

CREATE TABLE warning (
    seq bigint NOT NULL, idx integer NOT NULL, person_key text NOT NULL, admdvs text, year integer,
    code text NOT NULL, clause text, figure numeric, threshold numeric, setl_id text, event_id text,
    recorded_at timestamptz,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX warning_area ON warning (admdvs, year);

CREATE TABLE person_year (
    person_key text NOT NULL, year integer NOT NULL,
    admdvs text, insutype text, pack text, pack_version text, status_applied text,
    subsidy numeric(14,2) NOT NULL DEFAULT 0,
    ci_base numeric(14,2) NOT NULL DEFAULT 0, ci_deductible numeric(14,2), ci_paid numeric(14,2) NOT NULL DEFAULT 0,
    assist_base numeric(14,2) NOT NULL DEFAULT 0,
    cap_limit numeric(14,2), cap_used numeric(14,2) NOT NULL DEFAULT 0,
    grants_granted numeric(14,2) NOT NULL DEFAULT 0, grants_refused numeric(14,2) NOT NULL DEFAULT 0,
    settlements integer NOT NULL DEFAULT 0, cancelled integer NOT NULL DEFAULT 0, warnings integer NOT NULL DEFAULT 0,
    inpatient_count integer NOT NULL DEFAULT 0, inpatient_medfee numeric(14,2) NOT NULL DEFAULT 0,
    inpatient_hifmi numeric(14,2) NOT NULL DEFAULT 0, inpatient_maf numeric(14,2) NOT NULL DEFAULT 0,
    inpatient_hosp numeric(14,2) NOT NULL DEFAULT 0, inpatient_psn numeric(14,2) NOT NULL DEFAULT 0,
    outpatient_count integer NOT NULL DEFAULT 0, outpatient_medfee numeric(14,2) NOT NULL DEFAULT 0,
    outpatient_hifmi numeric(14,2) NOT NULL DEFAULT 0, outpatient_maf numeric(14,2) NOT NULL DEFAULT 0,
    outpatient_hosp numeric(14,2) NOT NULL DEFAULT 0, outpatient_psn numeric(14,2) NOT NULL DEFAULT 0,
    last_seq bigint, updated_at timestamptz,
    PRIMARY KEY (person_key, year)
);

CREATE TABLE person_year_rule (
    person_key text NOT NULL, year integer NOT NULL, rule_id text NOT NULL, fund text,
    amount numeric(14,2) NOT NULL DEFAULT 0, lines integer NOT NULL DEFAULT 0,
    PRIMARY KEY (person_key, year, rule_id)
);

-- audit_trail -----------------------------------------------------------------------------
CREATE TABLE ledger_event (
    seq bigint NOT NULL, idx integer NOT NULL, subject text NOT NULL, person_key text, type text NOT NULL,
    event_id text NOT NULL, correlation_id text, causation_id text, pack text, pack_version text, year integer,
    prev_hash text NOT NULL, hash text NOT NULL, recorded_at timestamptz, payload json NOT NULL,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX ledger_event_person ON ledger_event (person_key, seq, idx);

-- dead_letters ----------------------------------------------------------------------------
CREATE TABLE dead_letter (
    event_id text PRIMARY KEY, seq bigint NOT NULL, code text NOT NULL, message text, msg_type text,
    source text, raw bytea NOT NULL, redrive_of text, correlation_id text, recorded_at timestamptz
);
CREATE INDEX dead_letter_seq ON dead_letter (seq);

-- not projections: written by the API, kept across rebuilds --------------------------------
CREATE TABLE dead_letter_redrive (
    id bigserial PRIMARY KEY,
    dead_letter_id text NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL,                            -- the first result's `result` (settled, rejected, ...)
    ok boolean NOT NULL,
    results jsonb NOT NULL
);
CREATE INDEX dead_letter_redrive_dl ON dead_letter_redrive (dead_letter_id, id);

CREATE TABLE audit_job (
    id text PRIMARY KEY,
    scope jsonb NOT NULL,
    status text NOT NULL,                             -- queued | running | done | failed
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0,
    totals jsonb NOT NULL DEFAULT '{}',
    differences jsonb NOT NULL DEFAULT '[]',
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
