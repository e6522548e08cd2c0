//! The two repositories. They run the same SQL (`$N` parameters work in both
//! SQLite and PostgreSQL), so one macro writes both implementations and each
//! is still type-checked against its own driver.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::migrations::{MIGRATIONS, SCHEMA_VERSION, postgres_sql, sqlite_sql};
use super::{
    OpenTrade, OpportunityRecord, OrderStatus, PairClaim, StoreError, StoreResult, StoredOrder,
    Totals, TradeIntent, TradeRepository, signed_size,
};
use crate::domain::{Fill, Order, PairId, UnixMicros, Usd};
use crate::execution::{Position, TradeRecord};

const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Applies the missing migrations inside the open transaction `$tx`.
macro_rules! migrate {
    ($tx:ident, $dialect:ident) => {{
        sqlx::raw_sql(CREATE_MIGRATIONS).execute(&mut *$tx).await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&mut *$tx)
            .await?;
        let current = current.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(sqlx::AssertSqlSafe($dialect(m)))
                .execute(&mut *$tx)
                .await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::strategy::now_micros() as i64)
            .execute(&mut *$tx)
            .await?;
            tracing::info!(version = m.version, name = m.name, "trade store migrated");
        }
    }};
}

/// The embedded store: one file in WAL mode. `synchronous=NORMAL` survives a
/// killed process (what crash safety here is about) without an fsync on every
/// intent; a power cut may lose the last commits.
pub struct SqliteRepository {
    pool: SqlitePool,
}

/// The production store; several hosts may share it.
pub struct PostgresRepository {
    pool: PgPool,
}

impl SqliteRepository {
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Database("DATABASE_URL is not a valid sqlite: URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("creating the folder {}: {e}", dir.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file on this machine has no far end to have hung up: the
            // default ping before every checkout is one more round trip to
            // the worker thread on every write, the trade intent's included.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let mut tx = pool.begin().await?;
        migrate!(tx, sqlite_sql);
        tx.commit().await?;
        Ok(SqliteRepository { pool })
    }
}

impl PostgresRepository {
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::raw_sql(CREATE_MIGRATIONS).execute(&pool).await?;
        let mut tx = pool.begin().await?;
        // Hosts sharing the database may start together: one migrates, the others wait.
        sqlx::raw_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        migrate!(tx, postgres_sql);
        tx.commit().await?;
        Ok(PostgresRepository { pool })
    }
}

/// An enum as the word serde gives it (`kalshi`, `yes`, `buy`).
fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn from_word<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("'{s}'")))
}

fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decimal(s: &str) -> StoreResult<Decimal> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("decimal '{s}'")))
}

fn micros(at: UnixMicros) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

fn lease_micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

/// Sums fills into non-zero holdings.
fn holdings(rows: Vec<(PairId, Fill)>) -> Vec<Position> {
    let mut held: BTreeMap<(PairId, crate::domain::Venue, crate::domain::Outcome), Decimal> =
        BTreeMap::new();
    for (pair, f) in rows {
        *held.entry((pair, f.venue, f.outcome)).or_default() += signed_size(&f);
    }
    held.into_iter()
        .filter(|(_, c)| !c.is_zero())
        .map(|((pair, venue, outcome), contracts)| Position {
            pair,
            venue,
            outcome,
            contracts,
        })
        .collect()
}

/// Writes `TradeRepository` for a repository type over its sqlx pool.
macro_rules! repository {
    ($repo:ty, $backend:literal, $row:ty) => {
        impl $repo {
            fn fill_from_row(row: &$row) -> StoreResult<(PairId, Fill)> {
                let pair = PairId(row.try_get("pair_id")?);
                let fill = Fill {
                    client_order_id: row.try_get("client_order_id")?,
                    venue: from_word(&row.try_get::<String, _>("venue")?)?,
                    outcome: from_word(&row.try_get::<String, _>("outcome")?)?,
                    action: from_word(&row.try_get::<String, _>("action")?)?,
                    price: crate::domain::Price::new(decimal(&row.try_get::<String, _>("price")?)?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    size: super::size_of(&row.try_get::<String, _>("size")?)?,
                    fee: Usd::new(decimal(&row.try_get::<String, _>("fee")?)?),
                    at: row.try_get::<i64, _>("at")?.max(0) as UnixMicros,
                };
                Ok((pair, fill))
            }
        }

        impl TradeRepository for $repo {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn claim_pairs<'a>(
                &'a self,
                host: &'a str,
                pairs: &'a [PairId],
                now: UnixMicros,
                lease: Duration,
            ) -> BoxFuture<'a, StoreResult<Vec<PairClaim>>> {
                Box::pin(async move {
                    let stale_before = micros(now).saturating_sub(lease_micros(lease));
                    let mut tx = self.pool.begin().await?;
                    let mut claims = Vec::with_capacity(pairs.len());
                    for pair in pairs {
                        // Taken when free, already ours, or its owner stopped renewing.
                        sqlx::query(
                            "INSERT INTO pair_owners (pair_id, host_id, heartbeat_at) VALUES ($1, $2, $3)
                             ON CONFLICT (pair_id) DO UPDATE
                             SET host_id = excluded.host_id, heartbeat_at = excluded.heartbeat_at
                             WHERE pair_owners.host_id = excluded.host_id OR pair_owners.heartbeat_at < $4",
                        )
                        .bind(&pair.0)
                        .bind(host)
                        .bind(micros(now))
                        .bind(stale_before)
                        .execute(&mut *tx)
                        .await?;
                        let owner: String =
                            sqlx::query_scalar("SELECT host_id FROM pair_owners WHERE pair_id = $1")
                                .bind(&pair.0)
                                .fetch_one(&mut *tx)
                                .await?;
                        claims.push(PairClaim {
                            pair: pair.clone(),
                            owner,
                        });
                    }
                    tx.commit().await?;
                    Ok(claims)
                })
            }

            fn release_pairs<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async move {
                    sqlx::query("DELETE FROM pair_owners WHERE host_id = $1")
                        .bind(host)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn record_opportunity<'a>(
                &'a self,
                host: &'a str,
                r: &'a OpportunityRecord,
            ) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async move {
                    let opportunity = r.opportunity.as_ref().map(to_json).transpose()?;
                    sqlx::query(
                        "INSERT INTO opportunities
                         (host_id, pair_id, found_by, approved, reason, message, trade_id, opportunity, at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(host)
                    .bind(&r.pair.0)
                    .bind(&r.found_by)
                    .bind(r.approved)
                    .bind(r.reason.as_deref())
                    .bind(r.message.as_deref())
                    .bind(r.trade_id.as_deref())
                    .bind(opportunity)
                    .bind(micros(r.at))
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn opportunities<'a>(
                &'a self,
                host: &'a str,
                limit: u32,
            ) -> BoxFuture<'a, StoreResult<Vec<OpportunityRecord>>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT pair_id, found_by, approved, reason, message, trade_id, opportunity, at
                         FROM opportunities WHERE host_id = $1 ORDER BY id DESC LIMIT $2",
                    )
                    .bind(host)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let opportunity: Option<String> = row.try_get("opportunity")?;
                            Ok(OpportunityRecord {
                                pair: PairId(row.try_get("pair_id")?),
                                found_by: row.try_get("found_by")?,
                                approved: row.try_get("approved")?,
                                reason: row.try_get("reason")?,
                                message: row.try_get("message")?,
                                trade_id: row.try_get("trade_id")?,
                                opportunity: opportunity.as_deref().map(from_json).transpose()?,
                                at: row.try_get::<i64, _>("at")?.max(0) as UnixMicros,
                            })
                        })
                        .collect()
                })
            }

            fn begin_trade<'a>(
                &'a self,
                host: &'a str,
                intent: &'a TradeIntent,
            ) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(self.write_intent(host, intent))
            }

            fn add_order<'a>(
                &'a self,
                host: &'a str,
                trade_id: &'a str,
                order: &'a Order,
                at: UnixMicros,
            ) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    insert_order!(tx, host, trade_id, order, micros(at));
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn update_order<'a>(
                &'a self,
                client_order_id: &'a str,
                status: OrderStatus,
                venue_order_id: Option<&'a str>,
                error: Option<&'a str>,
                at: UnixMicros,
            ) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async move {
                    let updated = sqlx::query(
                        "UPDATE orders SET status = $1, venue_order_id = COALESCE($2, venue_order_id),
                         error = COALESCE($3, error), updated_at = $4 WHERE client_order_id = $5",
                    )
                    .bind(status.as_str())
                    .bind(venue_order_id)
                    .bind(error)
                    .bind(micros(at))
                    .bind(client_order_id)
                    .execute(&self.pool)
                    .await?;
                    if updated.rows_affected() == 0 {
                        return Err(StoreError::Corrupt(format!("no order '{client_order_id}'")));
                    }
                    Ok(())
                })
            }

            fn record_fill<'a>(
                &'a self,
                host: &'a str,
                trade_id: &'a str,
                fill: &'a Fill,
            ) -> BoxFuture<'a, StoreResult<bool>> {
                Box::pin(async move {
                    // The pair comes from the trade row, so a fill can't name another market.
                    let inserted = sqlx::query(
                        "INSERT INTO fills (client_order_id, trade_id, host_id, pair_id, venue, outcome,
                                            action, price, size, fee, at)
                         SELECT $1, trade_id, $2, pair_id, $3, $4, $5, $6, $7, $8, $9
                         FROM trades WHERE trade_id = $10
                         ON CONFLICT (client_order_id) DO NOTHING",
                    )
                    .bind(&fill.client_order_id)
                    .bind(host)
                    .bind(word(&fill.venue))
                    .bind(word(&fill.outcome))
                    .bind(word(&fill.action))
                    .bind(fill.price.value().to_string())
                    .bind(fill.size.value().to_string())
                    .bind(fill.fee.value().to_string())
                    .bind(micros(fill.at))
                    .bind(trade_id)
                    .execute(&self.pool)
                    .await?;
                    if inserted.rows_affected() == 1 {
                        return Ok(true);
                    }
                    let known: Option<String> =
                        sqlx::query_scalar("SELECT trade_id FROM trades WHERE trade_id = $1")
                            .bind(trade_id)
                            .fetch_optional(&self.pool)
                            .await?;
                    match known {
                        Some(_) => Ok(false),
                        None => Err(StoreError::Corrupt(format!("a fill for unknown trade '{trade_id}'"))),
                    }
                })
            }

            fn finish_trade<'a>(
                &'a self,
                host: &'a str,
                record: &'a TradeRecord,
            ) -> BoxFuture<'a, StoreResult<()>> {
                Box::pin(async move {
                    let at = micros(record.at);
                    let mut tx = self.pool.begin().await?;
                    let updated = sqlx::query(
                        "UPDATE trades SET outcome = $1, pnl = $2, record = $3, finished_at = $4
                         WHERE trade_id = $5 AND host_id = $6",
                    )
                    .bind(record.outcome.kind())
                    .bind(record.pnl.value().to_string())
                    .bind(to_json(record)?)
                    .bind(at)
                    .bind(&record.trade_id)
                    .bind(host)
                    .execute(&mut *tx)
                    .await?;
                    if updated.rows_affected() == 0 {
                        return Err(StoreError::Corrupt(format!(
                            "no trade '{}' of this host to finish",
                            record.trade_id
                        )));
                    }
                    // What was planned and never went out stays on record as such.
                    sqlx::query(
                        "UPDATE orders SET status = $1, updated_at = $2 WHERE trade_id = $3 AND status = $4",
                    )
                    .bind(OrderStatus::NotSent.as_str())
                    .bind(at)
                    .bind(&record.trade_id)
                    .bind(OrderStatus::Planned.as_str())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn open_trades<'a>(
                &'a self,
                host: &'a str,
            ) -> BoxFuture<'a, StoreResult<Vec<OpenTrade>>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT trade_id, opportunity, created_at FROM trades
                         WHERE host_id = $1 AND finished_at IS NULL ORDER BY created_at",
                    )
                    .bind(host)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut open = Vec::with_capacity(rows.len());
                    for row in rows {
                        let trade_id: String = row.try_get("trade_id")?;
                        let orders = sqlx::query(
                            "SELECT body, status, venue_order_id, error FROM orders
                             WHERE trade_id = $1 ORDER BY created_at, client_order_id",
                        )
                        .bind(&trade_id)
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(|o| {
                            let status: String = o.try_get("status")?;
                            Ok(StoredOrder {
                                trade_id: trade_id.clone(),
                                order: from_json(&o.try_get::<String, _>("body")?)?,
                                status: OrderStatus::parse(&status)
                                    .ok_or_else(|| StoreError::Corrupt(format!("status '{status}'")))?,
                                venue_order_id: o.try_get("venue_order_id")?,
                                error: o.try_get("error")?,
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                        let fills = sqlx::query("SELECT * FROM fills WHERE trade_id = $1 ORDER BY id")
                            .bind(&trade_id)
                            .fetch_all(&self.pool)
                            .await?
                            .iter()
                            .map(|r| Self::fill_from_row(r).map(|(_, f)| f))
                            .collect::<StoreResult<Vec<_>>>()?;
                        open.push(OpenTrade {
                            opportunity: from_json(&row.try_get::<String, _>("opportunity")?)?,
                            created_at: row.try_get::<i64, _>("created_at")?.max(0) as UnixMicros,
                            trade_id,
                            orders,
                            fills,
                        });
                    }
                    Ok(open)
                })
            }

            fn trades<'a>(&'a self, limit: u32) -> BoxFuture<'a, StoreResult<Vec<TradeRecord>>> {
                Box::pin(async move {
                    let rows: Vec<String> = sqlx::query_scalar(
                        "SELECT record FROM trades WHERE record IS NOT NULL
                         ORDER BY finished_at DESC, trade_id DESC LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(|r| from_json(r)).collect()
                })
            }

            fn trade<'a>(
                &'a self,
                trade_id: &'a str,
            ) -> BoxFuture<'a, StoreResult<Option<TradeRecord>>> {
                Box::pin(async move {
                    let row: Option<Option<String>> =
                        sqlx::query_scalar("SELECT record FROM trades WHERE trade_id = $1")
                            .bind(trade_id)
                            .fetch_optional(&self.pool)
                            .await?;
                    row.flatten().as_deref().map(from_json).transpose()
                })
            }

            fn has_trade<'a>(&'a self, trade_id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
                Box::pin(async move {
                    let row: Option<i32> =
                        sqlx::query_scalar("SELECT 1 FROM trades WHERE trade_id = $1")
                            .bind(trade_id)
                            .fetch_optional(&self.pool)
                            .await?;
                    Ok(row.is_some())
                })
            }

            fn positions<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<Position>>> {
                Box::pin(async move {
                    let rows = sqlx::query("SELECT * FROM fills WHERE host_id = $1")
                        .bind(host)
                        .fetch_all(&self.pool)
                        .await?;
                    let fills = rows
                        .iter()
                        .map(Self::fill_from_row)
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(holdings(fills))
                })
            }

            fn totals<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Totals>> {
                Box::pin(async move {
                    let mut t = Totals::default();
                    let trades = sqlx::query(
                        "SELECT outcome, COUNT(*) AS n FROM trades
                         WHERE host_id = $1 AND outcome IS NOT NULL GROUP BY outcome",
                    )
                    .bind(host)
                    .fetch_all(&self.pool)
                    .await?;
                    for row in trades {
                        t.trades.insert(row.try_get("outcome")?, row.try_get::<i64, _>("n")?.max(0) as u64);
                    }
                    let fills = sqlx::query("SELECT venue, fee FROM fills WHERE host_id = $1")
                        .bind(host)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut fees = Decimal::ZERO;
                    for row in fills {
                        *t.fills.entry(row.try_get("venue")?).or_default() += 1;
                        fees += decimal(&row.try_get::<String, _>("fee")?)?;
                    }
                    t.fees = Usd::new(fees);
                    t.pnl = self.pnl_since(host, 0).await?;
                    Ok(t)
                })
            }

            fn pnl_since<'a>(
                &'a self,
                host: &'a str,
                since: UnixMicros,
            ) -> BoxFuture<'a, StoreResult<Usd>> {
                Box::pin(async move {
                    let rows: Vec<String> = sqlx::query_scalar(
                        "SELECT pnl FROM trades
                         WHERE host_id = $1 AND finished_at >= $2 AND pnl IS NOT NULL",
                    )
                    .bind(host)
                    .bind(micros(since))
                    .fetch_all(&self.pool)
                    .await?;
                    let mut total = Decimal::ZERO;
                    for r in &rows {
                        total += decimal(r)?;
                    }
                    Ok(Usd::new(total))
                })
            }
        }
    };
}

/// Inserts one planned order inside the open transaction `$tx`.
macro_rules! insert_order {
    ($tx:ident, $host:expr, $trade_id:expr, $order:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO orders (client_order_id, trade_id, host_id, body, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&$order.client_order_id)
        .bind($trade_id)
        .bind($host)
        .bind(to_json($order)?)
        .bind(OrderStatus::Planned.as_str())
        .bind($at)
        .execute(&mut *$tx)
        .await?
    };
}

repository!(SqliteRepository, "sqlite", sqlx::sqlite::SqliteRow);
repository!(PostgresRepository, "postgres", sqlx::postgres::PgRow);

// The trade intent: one round trip on the order path.
//
// The intent is the write-ahead record that makes a crash after the orders
// leave visible at start-up, so it stays in front of the first order (a
// store that cannot write still refuses the trade, and a replayed trade id
// still finds its row and sends nothing). What it no longer does is cost a
// round trip per statement: it used to be BEGIN, the trade, each order, the
// approval row and COMMIT, each a hand-over to sqlx's SQLite worker thread
// and back (plus the pool's ping). Now the trade and its planned orders go in
// one batch; the approval row (`opportunities`, for the API's history) is not
// needed to recover anything and is booked by the executor after the orders.

/// `$1` trade id, `$2` host, `$3` pair, `$4` opportunity, `$5` created at.
const INSERT_TRADE: &str =
    "INSERT INTO trades (trade_id, host_id, pair_id, opportunity, created_at)
     VALUES ($1, $2, $3, $4, $5)";
const ORDER_COLUMNS: &str =
    "orders (client_order_id, trade_id, host_id, body, status, created_at, updated_at)";

/// SQLite: the trade and every planned order in one transaction sent as one
/// batch (sqlx runs the statements of one query in turn on its worker thread;
/// `$N` names the same argument in each). `$6` is the planned status, then
/// each order's client order id and body.
fn sqlite_intent_sql(orders: usize) -> String {
    if orders == 0 {
        return INSERT_TRADE.to_owned();
    }
    let values: Vec<String> = (0..orders)
        .map(|i| format!("(${}, $1, $2, ${}, $6, $5, $5)", 7 + 2 * i, 8 + 2 * i))
        .collect();
    format!(
        "BEGIN; {INSERT_TRADE}; INSERT INTO {ORDER_COLUMNS} VALUES {}; COMMIT",
        values.join(", ")
    )
}

/// PostgreSQL: one statement (a data-modifying CTE), atomic on its own and
/// one network round trip. The orders are inserted only from the trade row
/// the CTE wrote, so a refused trade row (a replayed id) writes no order.
fn postgres_intent_sql(orders: usize) -> String {
    if orders == 0 {
        return INSERT_TRADE.to_owned();
    }
    let values: Vec<String> = (0..orders)
        .map(|i| format!("(${}, ${})", 7 + 2 * i, 8 + 2 * i))
        .collect();
    format!(
        "WITH t AS ({INSERT_TRADE} RETURNING trade_id)
         INSERT INTO {ORDER_COLUMNS}
         SELECT o.client_order_id, t.trade_id, $2, o.body, $6, $5, $5
         FROM t CROSS JOIN (VALUES {}) AS o (client_order_id, body)",
        values.join(", ")
    )
}

/// Binds an intent's arguments in the order both statements above number them.
macro_rules! bind_intent {
    ($sql:expr, $host:expr, $intent:expr) => {{
        let intent = $intent;
        let mut q = sqlx::query(sqlx::AssertSqlSafe($sql))
            .bind(intent.trade_id.as_str())
            .bind($host)
            .bind(intent.opportunity.pair.0.as_ref())
            .bind(to_json(&intent.opportunity)?)
            .bind(micros(intent.created_at));
        if !intent.orders.is_empty() {
            q = q.bind(OrderStatus::Planned.as_str());
        }
        for order in &intent.orders {
            q = q.bind(order.client_order_id.as_str()).bind(to_json(order)?);
        }
        q
    }};
}

/// A connection running a batch that opens a transaction: unless the batch
/// got through its COMMIT, the connection is closed rather than pooled, and
/// SQLite rolls the transaction back with it. A failed INSERT, or the caller
/// dropping the write half-way, can't leave a transaction open on a pooled
/// connection for the next query to land in.
struct BatchConnection {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    committed: bool,
}

impl Drop for BatchConnection {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

impl SqliteRepository {
    async fn write_intent(&self, host: &str, intent: &TradeIntent) -> StoreResult<()> {
        let query = bind_intent!(sqlite_intent_sql(intent.orders.len()), host, intent);
        let mut batch = BatchConnection {
            conn: self.pool.acquire().await?,
            committed: false,
        };
        query.execute(&mut *batch.conn).await?;
        batch.committed = true;
        Ok(())
    }
}

impl PostgresRepository {
    async fn write_intent(&self, host: &str, intent: &TradeIntent) -> StoreResult<()> {
        bind_intent!(postgres_intent_sql(intent.orders.len()), host, intent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
