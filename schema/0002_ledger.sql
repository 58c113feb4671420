-- 0002: the signed ledger (docs/ledger.md): records, the Merkle tree's full nodes, checkpoints.
--
-- Records, nodes and checkpoints are append-only: the triggers below refuse UPDATE, DELETE and
-- TRUNCATE whoever asks, so only someone who can drop a trigger (the tables' owner or a
-- superuser) can rewrite history -- and cpx-audit catches that. ledger_head is the one mutable
-- row: appenders lock it (SELECT ... FOR UPDATE), which orders every append of every cpxd.

CREATE TABLE ledger_records (
    seq      bigint PRIMARY KEY CHECK (seq >= 0),
    kind     text NOT NULL CHECK (kind ~ '^[a-z_]{1,31}$'),
    ts_ms    bigint NOT NULL CHECK (ts_ms >= 0),
    party_id text CHECK (party_id ~ '^idn_[a-z2-7]{16}$'),
    record   bytea NOT NULL CHECK (length(record) BETWEEN 2 AND 1048576)
);
COMMENT ON TABLE ledger_records IS
    'The ledger: each record''s exact canonical bytes by seq (= Merkle leaf index). Append-only.';
COMMENT ON COLUMN ledger_records.record IS
    'The bytes that were hashed; served as they are, never re-serialised.';

CREATE INDEX ledger_records_party ON ledger_records (party_id, seq) WHERE party_id IS NOT NULL;
COMMENT ON INDEX ledger_records_party IS 'A party''s own records, for its receipts.';

CREATE TABLE ledger_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
COMMENT ON TABLE ledger_nodes IS
    'Full Merkle nodes (level 0 = leaf hashes): any root or proof is O(log n) reads. Append-only.';

CREATE TABLE ledger_checkpoints (
    size       bigint PRIMARY KEY CHECK (size > 0),
    root       bytea NOT NULL CHECK (length(root) = 32),
    note       text NOT NULL CHECK (length(note) BETWEEN 1 AND 65536),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger_checkpoints IS
    'Signed tree heads (C2SP tlog-checkpoint notes), one per batch of appends. Append-only.';

CREATE TABLE ledger_head (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    size  bigint NOT NULL CHECK (size >= 0),
    ts_ms bigint NOT NULL CHECK (ts_ms >= 0)
);
COMMENT ON TABLE ledger_head IS
    'The ledger''s size and last record time; appenders lock this row to take the next seq.';
INSERT INTO ledger_head (size, ts_ms) VALUES (0, 0);

-- The trigger functions resolve names in pg_catalog only: a caller's search_path (with an
-- operator of its own ahead of the real one) cannot change what they compute.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
COMMENT ON FUNCTION ledger_refuse_change() IS 'Refuses UPDATE, DELETE and TRUNCATE on the ledger.';

CREATE TRIGGER ledger_records_append_only BEFORE UPDATE OR DELETE ON ledger_records
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_records_no_truncate BEFORE TRUNCATE ON ledger_records
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The head only moves forward.
CREATE FUNCTION ledger_head_forward() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.size < OLD.size OR NEW.ts_ms < OLD.ts_ms THEN
        RAISE EXCEPTION 'ledger_head only moves forward' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ledger_head_forward BEFORE UPDATE OR DELETE ON ledger_head
    FOR EACH ROW EXECUTE FUNCTION ledger_head_forward();
CREATE TRIGGER ledger_head_no_truncate BEFORE TRUNCATE ON ledger_head
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Keys an identity has rotated away from: never accepted again, by it or anyone else.
CREATE TABLE retired_keys (
    public_key  bytea PRIMARY KEY CHECK (length(public_key) = 32),
    identity_id text NOT NULL REFERENCES identities (id),
    retired_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE retired_keys IS 'Public keys replaced by a key rotation; refused for reuse.';

CREATE TRIGGER retired_keys_append_only BEFORE UPDATE OR DELETE ON retired_keys
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER retired_keys_no_truncate BEFORE TRUNCATE ON retired_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
