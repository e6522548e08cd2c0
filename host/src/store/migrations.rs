//! The store's schema, as numbered migrations applied once each, in order,
//! inside one transaction per migration. A database newer than the binary is
//! refused rather than guessed at.
//!
//! The two dialects differ only in how a row id counts up; the `{id}` marker
//! is replaced per backend. Decimals are TEXT (exact), times BIGINT micros.

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "trades, orders, fills, opportunities, pair owners",
    sql: "
CREATE TABLE pair_owners (
    pair_id      TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE opportunities (
    id          {id},
    host_id     TEXT NOT NULL,
    pair_id     TEXT NOT NULL,
    found_by    TEXT NOT NULL,
    approved    BOOLEAN NOT NULL,
    reason      TEXT,
    message     TEXT,
    trade_id    TEXT,
    opportunity TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX opportunities_by_host ON opportunities (host_id, id);
CREATE TABLE trades (
    trade_id    TEXT PRIMARY KEY,
    host_id     TEXT NOT NULL,
    pair_id     TEXT NOT NULL,
    opportunity TEXT NOT NULL,
    outcome     TEXT,
    pnl         TEXT,
    record      TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX trades_open ON trades (host_id, finished_at);
CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    trade_id        TEXT NOT NULL REFERENCES trades (trade_id),
    host_id         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    venue_order_id  TEXT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX orders_by_trade ON orders (trade_id);
CREATE TABLE fills (
    id              {id},
    client_order_id TEXT NOT NULL UNIQUE,
    trade_id        TEXT NOT NULL REFERENCES trades (trade_id),
    host_id         TEXT NOT NULL,
    pair_id         TEXT NOT NULL,
    venue           TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    action          TEXT NOT NULL,
    price           TEXT NOT NULL,
    size            TEXT NOT NULL,
    fee             TEXT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX fills_by_host ON fills (host_id, pair_id);
",
}];

pub(crate) fn sqlite_sql(m: &Migration) -> String {
    m.sql.replace("{id}", "INTEGER PRIMARY KEY AUTOINCREMENT")
}

pub(crate) fn postgres_sql(m: &Migration) -> String {
    m.sql.replace("{id}", "BIGSERIAL PRIMARY KEY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
    }

    #[test]
    fn every_row_id_marker_is_replaced_for_both_dialects() {
        for m in MIGRATIONS {
            assert!(!sqlite_sql(m).contains("{id}"));
            assert!(!postgres_sql(m).contains("{id}"));
        }
    }
}
