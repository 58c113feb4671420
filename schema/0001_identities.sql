-- 0001: identities, idempotency keys and the durable replay guard.
--
-- An identity is an organisation trading on CPX (a provider centre, an enterprise buyer, a
-- regulator or the exchange's operator) with the Ed25519 key that signs its requests. Its id is
-- derived from the key it registered with (see ledger/keyfile.h); it is pending until an operator
-- approves or rejects it.

CREATE TABLE identities (
    id              text PRIMARY KEY CHECK (id ~ '^idn_[a-z2-7]{16}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    reg_no          text NOT NULL CHECK (reg_no ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$'),
    roles           text[] NOT NULL CHECK (cardinality(roles) BETWEEN 1 AND 4
                        AND roles <@ ARRAY['buyer', 'provider', 'regulator', 'operator']),
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    decided_by      text REFERENCES identities (id),
    decision_reason text CHECK (length(decision_reason) <= 500),
    CONSTRAINT identities_decided CHECK ((status = 'pending') = (decided_at IS NULL))
);
COMMENT ON TABLE identities IS 'Organisations trading on CPX, one row per registered key owner.';

CREATE UNIQUE INDEX identities_public_key ON identities (public_key);
COMMENT ON INDEX identities_public_key IS 'One identity per key; serves the register conflict check.';

CREATE UNIQUE INDEX identities_live_reg_no ON identities (reg_no) WHERE status <> 'rejected';
COMMENT ON INDEX identities_live_reg_no IS
    'A registration number belongs to one live identity; a rejected one may register again.';

CREATE INDEX identities_status_id ON identities (status, id);
COMMENT ON INDEX identities_status_id IS 'Serves identity_list filtered by status, paged by id.';

-- Idempotency-Key: the first committed answer to a state-changing request, replayed on repeats.
CREATE TABLE idempotency_keys (
    identity_id  text NOT NULL CHECK (identity_id ~ '^idn_[a-z2-7]{16}$'),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash bytea NOT NULL CHECK (length(request_hash) = 32),
    status       smallint NOT NULL CHECK (status BETWEEN 200 AND 599),
    response     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity_id, key)
);
COMMENT ON TABLE idempotency_keys IS
    'First answer per (identity, Idempotency-Key); request_hash tells a repeat from a reuse.';

-- Signatures of state-changing requests, kept while their timestamp is inside the clock window,
-- written in the same transaction as the change: a replay is refused even across a restart.
CREATE TABLE request_signatures (
    sig_prefix bytea PRIMARY KEY CHECK (length(sig_prefix) = 16),
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE request_signatures IS 'Replay guard for state-changing signed requests.';

CREATE INDEX request_signatures_expires_at ON request_signatures (expires_at);
COMMENT ON INDEX request_signatures_expires_at IS 'Serves signature_prune.';
