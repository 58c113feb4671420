-- 0003: the market. Listings, orders, agreements, money, and the sequencer's journal.
--
-- One writer: the sequencer (server/sequencer.c) writes every table here, one transaction per
-- batch of commands, together with the ledger records the batch appends (docs/trading.md §5).
-- The hot tables (listings, orders, agreements) carry no foreign keys: the sequencer only ever
-- names identities that exist (they are never deleted) and orders and listings it wrote in the
-- same or an earlier batch, and each key check would cost a lookup and a share lock on the
-- referenced row for every row a batch writes (measured: 10 ms for a batch of 30 orders).
-- Money is bigint micro-CNY. Times are unix seconds (engine time) or timestamptz (row times).

-- The journal: every command the matching engine ran, in order, in its binary form
-- (matching/codec.c). Replaying it into a fresh engine rebuilds the books exactly.
CREATE TABLE sequencer_commands (
    seq     bigint PRIMARY KEY CHECK (seq >= 1),
    batch   bigint NOT NULL,
    command bytea NOT NULL CHECK (length(command) BETWEEN 1 AND 512)
);
COMMENT ON TABLE sequencer_commands IS 'Every engine command in order; replayed at start.';

-- One row per committed batch: the engine's state hash after it, to check a replay against.
CREATE TABLE sequencer_batches (
    id          bigint PRIMARY KEY CHECK (id >= 1),
    commands    bigint NOT NULL CHECK (commands >= 0),  -- journal length after the batch
    state_hash  bigint NOT NULL,                        -- mx_state_hash, as a signed 64-bit
    engine_now  bigint NOT NULL,                        -- the engine's clock (unix seconds)
    next_id     bigint NOT NULL CHECK (next_id >= 1),   -- next listing/order id
    next_agreement bigint NOT NULL CHECK (next_agreement >= 1),
    ledger_size bigint NOT NULL CHECK (ledger_size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sequencer_batches IS 'Committed sequencer batches and the state hash after each.';

-- Vendor and model names, as the small integers the engine compares (allow-lists).
CREATE TABLE market_names (
    id   integer PRIMARY KEY CHECK (id >= 1),
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 97)  -- "vendor" or "vendor/model"
);
COMMENT ON TABLE market_names IS 'Vendor and vendor/model names and their engine ids.';

CREATE TABLE listings (
    id          bigint PRIMARY KEY CHECK (id >= 1),
    provider    text NOT NULL,
    spec        json NOT NULL,           -- the listing's terms as the API shows them
    region      text NOT NULL,
    devices     bigint NOT NULL CHECK (devices >= 1),
    remaining   bigint NOT NULL CHECK (remaining BETWEEN 0 AND devices),
    status      text NOT NULL CHECK (status IN ('open', 'filled', 'cancelled', 'expired')),
    cancel_reason text,
    ledger_seq  bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    closed_at   timestamptz,
    CONSTRAINT listings_closed CHECK ((status = 'open') = (closed_at IS NULL))
);
COMMENT ON TABLE listings IS 'Providers'' capacity listings (the asks).';
CREATE INDEX listings_provider ON listings (provider, id);
COMMENT ON INDEX listings_provider IS 'Serves a provider''s own listings, paged by id.';
CREATE INDEX listings_open ON listings (id) WHERE status = 'open';
COMMENT ON INDEX listings_open IS 'Serves the start-up load of live listings.';

-- Job descriptions stay out of the public ledger: orders carry their SHA-256 only.
CREATE TABLE jobs (
    buyer       text NOT NULL REFERENCES identities (id),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    description text NOT NULL CHECK (octet_length(description) <= 65536),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (buyer, sha256)
);
COMMENT ON TABLE jobs IS 'Buyers'' job descriptions, private, referenced by orders by hash.';

CREATE TABLE orders (
    id              bigint PRIMARY KEY CHECK (id >= 1),
    buyer           text NOT NULL,
    client_order_id text NOT NULL CHECK (client_order_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    body_sha256     bytea NOT NULL CHECK (length(body_sha256) = 32),
    spec            json NOT NULL,       -- the order's terms as the API shows them
    precision       text NOT NULL,
    remaining       bigint NOT NULL CHECK (remaining >= 0),
    filled_devices  bigint NOT NULL CHECK (filled_devices >= 0),
    hold            bigint NOT NULL CHECK (hold >= 0),
    hold_left       bigint NOT NULL CHECK (hold_left BETWEEN 0 AND hold),
    hold_bps        integer NOT NULL CHECK (hold_bps BETWEEN 0 AND 10000),  -- commission held for
    status          text NOT NULL CHECK (status IN ('open', 'filled', 'cancelled', 'expired')),
    cancel_reason   text,
    ledger_seq      bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    closed_at       timestamptz,
    CONSTRAINT orders_closed CHECK ((status = 'open') = (closed_at IS NULL)),
    CONSTRAINT orders_hold_released CHECK (status = 'open' OR hold_left = 0)
);
COMMENT ON TABLE orders IS 'Buyers'' orders (the bids).';
CREATE UNIQUE INDEX orders_client_order_id ON orders (buyer, client_order_id);
COMMENT ON INDEX orders_client_order_id IS 'A client order id places one order per buyer.';
CREATE INDEX orders_buyer ON orders (buyer, id);
COMMENT ON INDEX orders_buyer IS 'Serves a buyer''s own orders, paged by id.';
CREATE INDEX orders_open ON orders (id) WHERE status = 'open';
COMMENT ON INDEX orders_open IS 'Serves the start-up load of live orders.';

CREATE TABLE agreements (
    id          bigint PRIMARY KEY CHECK (id >= 1),
    order_id    bigint NOT NULL,
    listing_id  bigint NOT NULL,
    buyer       text NOT NULL,
    provider    text NOT NULL,
    precision   text NOT NULL,
    region      text NOT NULL,
    devices     bigint NOT NULL CHECK (devices >= 1),
    tflops      bigint NOT NULL CHECK (tflops >= 1),   -- per device, at the precision
    hours       bigint NOT NULL CHECK (hours >= 1),
    price       bigint NOT NULL CHECK (price >= 1),    -- micro-CNY per PFLOPS-hour
    value       bigint NOT NULL CHECK (value >= 0),
    commission  bigint NOT NULL CHECK (commission >= 0),
    maker       text NOT NULL CHECK (maker IN ('buyer', 'provider')),
    start_at    bigint NOT NULL,                        -- unix seconds
    endpoint    text NOT NULL,
    status      text NOT NULL DEFAULT 'pending_delivery',
    ledger_seq  bigint NOT NULL,
    created_at  timestamptz NOT NULL
);
COMMENT ON TABLE agreements IS 'One agreement per fill, signed into the ledger by the exchange.';
CREATE INDEX agreements_buyer ON agreements (buyer, id);
COMMENT ON INDEX agreements_buyer IS 'Serves a buyer''s agreements.';
CREATE INDEX agreements_provider ON agreements (provider, id);
COMMENT ON INDEX agreements_provider IS 'Serves a provider''s agreements.';
CREATE INDEX agreements_order ON agreements (order_id);
COMMENT ON INDEX agreements_order IS 'Serves an order''s agreement ids.';
CREATE INDEX agreements_market ON agreements (precision, region, created_at);
COMMENT ON INDEX agreements_market IS 'Serves last price, 24 h volume and the price index.';

-- Double entry. Each (owner, kind) is an account; the exchange's external account is the
-- counterpart of deposits and the only one that may go negative.
CREATE TABLE accounts (
    owner   text NOT NULL,   -- an identity id, or 'exchange'
    kind    text NOT NULL CHECK (kind IN ('available', 'held', 'escrow', 'external', 'commission')),
    balance bigint NOT NULL,
    PRIMARY KEY (owner, kind),
    CONSTRAINT accounts_not_negative CHECK (balance >= 0 OR kind = 'external')
);
COMMENT ON TABLE accounts IS 'Balances in micro-CNY; they always sum to zero.';

CREATE TABLE entries (
    id         bigint PRIMARY KEY CHECK (id >= 1),
    batch      bigint NOT NULL,
    from_owner text NOT NULL,
    from_kind  text NOT NULL,
    to_owner   text NOT NULL,
    to_kind    text NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    reason     text NOT NULL CHECK (reason IN ('deposit', 'hold', 'fill', 'release')),
    ref        text NOT NULL,  -- the order, agreement or deposit the movement belongs to
    created_at timestamptz NOT NULL
);
COMMENT ON TABLE entries IS 'Every movement of money: amount leaves one account, enters another.';
CREATE INDEX entries_from ON entries (from_owner, id);
COMMENT ON INDEX entries_from IS 'Serves statements of an account.';
CREATE INDEX entries_to ON entries (to_owner, id);
COMMENT ON INDEX entries_to IS 'Serves statements of an account.';

-- The journal, the batches and the money movements are history: never rewritten.
CREATE TRIGGER sequencer_commands_append_only BEFORE UPDATE OR DELETE ON sequencer_commands
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER sequencer_commands_no_truncate BEFORE TRUNCATE ON sequencer_commands
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER sequencer_batches_append_only BEFORE UPDATE OR DELETE ON sequencer_batches
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER sequencer_batches_no_truncate BEFORE TRUNCATE ON sequencer_batches
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
