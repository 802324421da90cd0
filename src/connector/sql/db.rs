//! One connection pool per backend (PostgreSQL, MariaDB/MySQL, SQLite),
//! statements built from checked identifiers and bound values, and rows
//! rendered to JSON the same way on every backend: numbers as numbers,
//! exact decimals as text, dates as ISO 8601, binary as base64, NULL as
//! null.

use std::{str::FromStr, time::Duration};

use base64::Engine;
use serde_json::{Map, Value};
use sqlx::{Column, Row, TypeInfo, ValueRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            "sqlite" => Some(Backend::Sqlite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Quotes an identifier that `mapping::is_ident` (or the live schema)
    /// vouched for; the doubling is for names from the schema.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Backend::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Text(String),
    /// A moment (`:before` in the operator's retention and inactivity SQL).
    Time(chrono::DateTime<chrono::Utc>),
}

/// A statement under construction: SQL text with markers, and the values
/// bound to them in order.
#[derive(Debug, Clone)]
pub struct Q {
    pub backend: Backend,
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Q {
    pub fn new(backend: Backend) -> Q {
        Q {
            backend,
            sql: String::new(),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Q {
        self.sql.push_str(s);
        self
    }

    pub fn ident(&mut self, s: &str) -> &mut Q {
        let q = self.backend.quote(s);
        self.sql.push_str(&q);
        self
    }

    /// Binds a value; `cast` is the PostgreSQL type a text value must be
    /// cast to (a uuid key, say): PostgreSQL does not compare text with
    /// other types on its own.
    pub fn bind(&mut self, v: Bind, cast: Option<&str>) -> &mut Q {
        self.binds.push(v);
        let n = self.binds.len();
        match self.backend {
            Backend::Postgres => match (cast, self.binds.last()) {
                (Some(t), Some(Bind::Text(_))) => {
                    let t = self.backend.quote(t);
                    self.sql.push_str(&format!("CAST(${n} AS {t})"))
                }
                _ => self.sql.push_str(&format!("${n}")),
            },
            _ => self.sql.push('?'),
        }
        self
    }
}

pub enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

pub async fn connect(url: &str) -> anyhow::Result<(Backend, Pool)> {
    let backend = Backend::from_url(url)
        .ok_or_else(|| anyhow::anyhow!("the URL is not postgres://, mysql:// or sqlite://"))?;
    let timeout = Duration::from_secs(10);
    let pool = match backend {
        Backend::Postgres => Pool::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(timeout)
                .connect(url)
                .await?,
        ),
        Backend::MySql => {
            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None => url.to_string(),
            };
            Pool::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect(&url)
                    .await?,
            )
        }
        Backend::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            Pool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await?,
            )
        }
    };
    Ok((backend, pool))
}

pub type Rendered = Map<String, Value>;

/// Builds the sqlx query for one backend with the statement's values bound.
macro_rules! query {
    ($db:ty, $q:expr) => {{
        let mut query = sqlx::query::<$db>(sqlx::AssertSqlSafe($q.sql.clone()));
        for b in &$q.binds {
            query = match b {
                Bind::Int(i) => query.bind(*i),
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Time(t) => query.bind(*t),
            };
        }
        query
    }};
}

impl Pool {
    pub async fn fetch(&self, q: &Q) -> Result<Vec<Rendered>, sqlx::Error> {
        match self {
            Pool::Postgres(p) => query!(sqlx::Postgres, q)
                .fetch_all(p)
                .await?
                .iter()
                .map(render_pg)
                .collect(),
            Pool::MySql(p) => query!(sqlx::MySql, q)
                .fetch_all(p)
                .await?
                .iter()
                .map(render_my)
                .collect(),
            Pool::Sqlite(p) => query!(sqlx::Sqlite, q)
                .fetch_all(p)
                .await?
                .iter()
                .map(render_lite)
                .collect(),
        }
    }

    /// Runs a script of several statements as it is, nothing bound: for
    /// loading an example schema (tests, `bench/`), never for a request.
    pub async fn run_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        let script = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        match self {
            Pool::Postgres(p) => script.execute(p).await.map(|_| ()),
            Pool::MySql(p) => script.execute(p).await.map(|_| ()),
            Pool::Sqlite(p) => script.execute(p).await.map(|_| ()),
        }
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
            Pool::MySql(p) => Tx::MySql(p.begin().await?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    pub async fn fetch(&mut self, q: &Q) -> Result<Vec<Rendered>, sqlx::Error> {
        match self {
            Tx::Postgres(t) => query!(sqlx::Postgres, q)
                .fetch_all(&mut **t)
                .await?
                .iter()
                .map(render_pg)
                .collect(),
            Tx::MySql(t) => query!(sqlx::MySql, q)
                .fetch_all(&mut **t)
                .await?
                .iter()
                .map(render_my)
                .collect(),
            Tx::Sqlite(t) => query!(sqlx::Sqlite, q)
                .fetch_all(&mut **t)
                .await?
                .iter()
                .map(render_lite)
                .collect(),
        }
    }

    pub async fn execute(&mut self, q: &Q) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Postgres(t) => query!(sqlx::Postgres, q)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::MySql(t) => query!(sqlx::MySql, q)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::Sqlite(t) => query!(sqlx::Sqlite, q)
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::MySql(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }
}

fn decode_err(col: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("column {col}: {e}").into())
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

fn naive_ts(t: chrono::NaiveDateTime) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

fn render_pg(row: &sqlx::postgres::PgRow) -> Result<Rendered, sqlx::Error> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        if row.try_get_raw(i)?.is_null() {
            out.insert(name.to_string(), Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_string();
        let v = match ty.as_str() {
            "BOOL" => Value::Bool(row.try_get(i)?),
            "INT2" => Value::from(row.try_get::<i16, _>(i)?),
            "INT4" => Value::from(row.try_get::<i32, _>(i)?),
            "INT8" => Value::from(row.try_get::<i64, _>(i)?),
            "FLOAT4" => float(row.try_get::<f32, _>(i)? as f64),
            "FLOAT8" => float(row.try_get::<f64, _>(i)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "\"CHAR\"" | "CHAR" | "UNKNOWN" => {
                Value::String(row.try_get(i)?)
            }
            "DATE" => Value::String(row.try_get::<chrono::NaiveDate, _>(i)?.to_string()),
            "TIMESTAMP" => naive_ts(row.try_get(i)?),
            "TIMESTAMPTZ" => Value::String(
                row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)?
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
            "TIME" => Value::String(row.try_get::<chrono::NaiveTime, _>(i)?.to_string()),
            "BYTEA" => b64(&row.try_get::<Vec<u8>, _>(i)?),
            "NUMERIC" => {
                let raw = row.try_get_raw(i)?;
                let text = match raw.format() {
                    sqlx::postgres::PgValueFormat::Text => raw.as_str().map(str::to_string).ok(),
                    sqlx::postgres::PgValueFormat::Binary => {
                        raw.as_bytes().ok().and_then(pg_numeric)
                    }
                };
                Value::String(text.ok_or_else(|| decode_err(name, "not a numeric"))?)
            }
            other => {
                return Err(decode_err(
                    name,
                    format!("type {other} cannot be read; cast it to text in the SQL"),
                ))
            }
        };
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

/// PostgreSQL's binary NUMERIC as exact text (no decimal crate for one
/// conversion): base-10000 digit groups, a weight and the display scale.
fn pg_numeric(b: &[u8]) -> Option<String> {
    let rd = |i: usize| -> Option<i16> { Some(i16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let n = rd(0)? as i64;
    let weight = rd(2)? as i64;
    let sign = rd(4)? as u16;
    let dscale = rd(6)? as u16 as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digit = |i: i64| -> i64 {
        if i < 0 || i >= n {
            0
        } else {
            rd(8 + 2 * i as usize).unwrap_or(0) as i64
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        s.push_str(&digit(0).to_string());
        for i in 1..=weight {
            s.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

fn render_my(row: &sqlx::mysql::MySqlRow) -> Result<Rendered, sqlx::Error> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        if row.try_get_raw(i)?.is_null() {
            out.insert(name.to_string(), Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_string();
        let v = match ty.as_str() {
            "BOOLEAN" => Value::Bool(row.try_get_unchecked::<i64, _>(i)? != 0),
            "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
                Value::from(row.try_get_unchecked::<i64, _>(i)?)
            }
            t if t.ends_with("UNSIGNED") => Value::from(row.try_get_unchecked::<u64, _>(i)?),
            "FLOAT" => float(row.try_get::<f32, _>(i)? as f64),
            "DOUBLE" => float(row.try_get::<f64, _>(i)?),
            "DATE" => Value::String(row.try_get::<chrono::NaiveDate, _>(i)?.to_string()),
            "DATETIME" => naive_ts(row.try_get(i)?),
            // sqlx checks TIMESTAMP against DateTime<Utc> only; the wire
            // form is DATETIME's, in the session's zone (UTC for sqlx).
            "TIMESTAMP" => naive_ts(row.try_get_unchecked(i)?),
            "TIME" => match row.try_get::<chrono::NaiveTime, _>(i) {
                Ok(t) => Value::String(t.to_string()),
                // A TIME beyond one day (an interval): its text form.
                Err(_) => Value::String(row.try_get_unchecked::<String, _>(i)?),
            },
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
            | "GEOMETRY" => b64(&row.try_get_unchecked::<Vec<u8>, _>(i)?),
            "BIT" => {
                let b: Vec<u8> = row.try_get_unchecked(i)?;
                Value::from(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64))
            }
            // DECIMAL comes as its exact text; CHAR, VARCHAR, TEXT, ENUM,
            // SET and JSON are text.
            _ => Value::String(row.try_get_unchecked::<String, _>(i)?),
        };
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

fn render_lite(row: &sqlx::sqlite::SqliteRow) -> Result<Rendered, sqlx::Error> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.insert(name.to_string(), Value::Null);
            continue;
        }
        // SQLite types values, not columns: the value's storage class,
        // with the declared BOOLEAN read as true/false.
        let stored = raw.type_info().name().to_string();
        let declared = col.type_info().name().to_ascii_uppercase();
        let v = match stored.as_str() {
            "INTEGER" | "BOOLEAN" | "INT8" | "INT4" | "INT" | "INT2" | "BIGINT" => {
                let n = row.try_get_unchecked::<i64, _>(i)?;
                if declared == "BOOLEAN" || declared == "BOOL" {
                    Value::Bool(n != 0)
                } else {
                    Value::from(n)
                }
            }
            "REAL" | "FLOAT" | "DOUBLE" | "NUMERIC" => float(row.try_get_unchecked::<f64, _>(i)?),
            "BLOB" => b64(&row.try_get_unchecked::<Vec<u8>, _>(i)?),
            _ => Value::String(row.try_get_unchecked::<String, _>(i)?),
        };
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for x in [ndigits, weight, sign as i16, dscale as i16] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn postgres_numerics_come_out_exact() {
        // 49.95: weight 0, groups [49, 9500], scale 2
        assert_eq!(
            pg_numeric(&numeric(2, 0, 0, 2, &[49, 9500])).unwrap(),
            "49.95"
        );
        // 100.00: one group [100], scale 2
        assert_eq!(pg_numeric(&numeric(1, 0, 0, 2, &[100])).unwrap(), "100.00");
        // 123456789.5 = [1, 2345, 6789, 5000], weight 2
        assert_eq!(
            pg_numeric(&numeric(4, 2, 0, 1, &[1, 2345, 6789, 5000])).unwrap(),
            "123456789.5"
        );
        // -0.0012: weight -1, groups [12]
        assert_eq!(
            pg_numeric(&numeric(1, -1, 0x4000, 4, &[12])).unwrap(),
            "-0.0012"
        );
        // 0 with scale 2: no groups
        assert_eq!(pg_numeric(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
    }
}
