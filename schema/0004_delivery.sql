-- 0004: delivery and billing (docs/delivery.md). The outbox of jobs to dispatch, the attempts
-- to deliver them, usage reports, bills, and the agreement's life after the match.
--
-- The sequencer writes agreements, deliveries (its state), usage, bills and money in its batch;
-- the dispatcher threads write only the attempts and the outbox row's lease and schedule.

ALTER TABLE agreements
    ADD COLUMN commission_bps integer NOT NULL DEFAULT 0 CHECK (commission_bps BETWEEN 0 AND 10000),
    ADD COLUMN deliver_by     bigint NOT NULL DEFAULT 0,  -- unix seconds
    ADD COLUMN started_at     bigint,                     -- when the acceptance was recorded
    ADD COLUMN ends_at        bigint,                     -- started_at + hours x 3600
    ADD COLUMN metered_until  bigint,                     -- end of the latest usage report
    ADD COLUMN escrow_left    bigint NOT NULL DEFAULT 0 CHECK (escrow_left >= 0),
    ADD COLUMN reserved       bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),  -- in open bills
    ADD COLUMN commission_billed bigint NOT NULL DEFAULT 0 CHECK (commission_billed >= 0),
    ADD COLUMN closed_at      bigint,
    ADD CONSTRAINT agreements_status
        CHECK (status IN ('pending_delivery', 'active', 'completed', 'failed')),
    ADD CONSTRAINT agreements_reserved CHECK (reserved <= escrow_left);
CREATE INDEX agreements_active_end ON agreements (ends_at) WHERE status = 'active';
COMMENT ON INDEX agreements_active_end IS 'Serves the completion of agreements past their end.';

-- The listing's ask as the engine took it (matching/codec.c), so devices of an agreement that
-- could not be delivered can return to the book even after the listing was filled.
ALTER TABLE listings ADD COLUMN ask bytea;

-- The outbox: one delivery per agreement, written with it.
CREATE TABLE deliveries (
    agreement_id    bigint PRIMARY KEY,
    provider        text NOT NULL,
    endpoint        text NOT NULL,
    endpoint_pin    text,                          -- sha256//base64 of the key, or NULL
    state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'accepted', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,                   -- a dispatcher is on it until then
    deliver_by      bigint NOT NULL,               -- unix seconds
    last_error      text,
    created_at      timestamptz NOT NULL
);
COMMENT ON TABLE deliveries IS 'The dispatch outbox: each agreement''s job until accepted or failed.';
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
COMMENT ON INDEX deliveries_due IS 'Serves the dispatchers'' claim of due jobs.';

CREATE TABLE delivery_attempts (
    agreement_id bigint NOT NULL,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    started_at   timestamptz NOT NULL,
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    http_status  integer,                          -- NULL when no answer came
    outcome      text NOT NULL CHECK (outcome IN ('accepted', 'failed', 'skipped')),
    error        text CHECK (length(error) <= 500),
    PRIMARY KEY (agreement_id, attempt)
);
COMMENT ON TABLE delivery_attempts IS 'Every attempt to deliver a job, and how it ended.';

CREATE TABLE usage_reports (
    id            bigint PRIMARY KEY CHECK (id >= 1),
    agreement_id  bigint NOT NULL,
    provider      text NOT NULL,
    period_start  bigint NOT NULL,
    period_end    bigint NOT NULL CHECK (period_end > period_start),
    device_seconds bigint NOT NULL CHECK (device_seconds >= 0),
    ledger_seq    bigint NOT NULL,
    created_at    timestamptz NOT NULL
);
COMMENT ON TABLE usage_reports IS 'Providers'' signed usage reports; one bill each.';
CREATE INDEX usage_reports_agreement ON usage_reports (agreement_id, period_start);
COMMENT ON INDEX usage_reports_agreement IS 'Serves an agreement''s reports.';

CREATE TABLE bills (
    id            bigint PRIMARY KEY CHECK (id >= 1),   -- the usage report's number
    agreement_id  bigint NOT NULL,
    buyer         text NOT NULL,
    provider      text NOT NULL,
    period_start  bigint NOT NULL,
    period_end    bigint NOT NULL,
    device_seconds bigint NOT NULL CHECK (device_seconds >= 0),
    amount        bigint NOT NULL CHECK (amount >= 0),
    commission    bigint NOT NULL CHECK (commission >= 0),
    final         boolean NOT NULL,
    status        text NOT NULL CHECK (status IN ('open', 'disputed', 'settled', 'refunded')),
    dispute_until bigint NOT NULL,
    dispute_reason text,
    resolution_note text,
    ledger_seq    bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    settled_at    timestamptz
);
COMMENT ON TABLE bills IS 'One bill per usage report, settled after its dispute window.';
CREATE INDEX bills_buyer ON bills (buyer, id);
COMMENT ON INDEX bills_buyer IS 'Serves a buyer''s bills.';
CREATE INDEX bills_provider ON bills (provider, id);
COMMENT ON INDEX bills_provider IS 'Serves a provider''s bills.';
CREATE INDEX bills_agreement ON bills (agreement_id, id);
COMMENT ON INDEX bills_agreement IS 'Serves an agreement''s bills.';
CREATE INDEX bills_due ON bills (dispute_until) WHERE status = 'open';
COMMENT ON INDEX bills_due IS 'Serves the settlement of bills whose window passed.';

-- Agreements made before this migration: their escrow is what the fill moved, their deadline
-- 900 s after they were made (the default --delivery-window), their commission rate the least
-- rate r with floor(value x r / 10000) = the commission escrowed (the rate charged was one of
-- those, and the least never bills more than the buyer paid for), and their jobs go into the
-- outbox like every other.
UPDATE agreements a SET escrow_left = a.value + a.commission,
    deliver_by = greatest(a.start_at, extract(epoch FROM a.created_at)::bigint) + 900,
    commission_bps = CASE WHEN a.value = 0 THEN 0
                          ELSE ceil(a.commission * 10000.0 / a.value)::integer END;
INSERT INTO deliveries (agreement_id, provider, endpoint, next_attempt_at, deliver_by, created_at)
    SELECT a.id, a.provider, a.endpoint, now(), a.deliver_by, a.created_at FROM agreements a;

ALTER TABLE entries DROP CONSTRAINT entries_reason_check;
ALTER TABLE entries ADD CONSTRAINT entries_reason_check CHECK (reason IN
    ('deposit', 'hold', 'fill', 'release', 'settle', 'commission', 'refund'));

-- The fee schedule in force is the last fee_schedule record (docs/delivery.md §4); a cpxd reads
-- it before its first fee, and without this it would walk the whole ledger back to find it.
CREATE INDEX ledger_records_fee_schedule ON ledger_records (seq) WHERE kind = 'fee_schedule';
COMMENT ON INDEX ledger_records_fee_schedule IS 'Serves the read of the fee schedule in force.';
