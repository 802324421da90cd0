//! `kind = "sql"`: the company's own PostgreSQL, MariaDB/MySQL or SQLite
//! database, mapped in the company file (CONTRACT.md, "SQL connector").
//! Only statements the mapping implies run (plus the operator's own
//! `blockers` and `consents` SQL); identifiers come from the checked file
//! and exist in the live schema, values are always bound, and an erasure
//! is one transaction: all of it or nothing.

pub mod db;
pub mod mapping;
pub mod schema;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde_json::Value;

use self::{
    db::{Backend, Bind, Pool, Rendered, Q},
    mapping::{Erase, Link, Mapping, Resolved, Strategy},
    schema::{Col, Kind, Schema, TableInfo},
};
use super::{
    http::CallError, AccountRef, Connector, EmailChange, EraseOutcome, ErasureReceipt,
    KnowledgeClaim, RecordPage, Retained,
};
use crate::domain::{blockers::Blocker, Email};

/// Rows per export page: a page is held in memory once.
const PAGE: i64 = 500;
/// What `mask` writes into a text column.
const MASK: &str = "erased";

pub struct SqlSystem {
    pub id: String,
    backend: Backend,
    pool: Pool,
    map: Mapping,
    tables: Vec<Resolved>,
    schema: Schema,
    hash_key: SecretBox<[u8; 32]>,
    tz: chrono_tz::Tz,
}

/// What a table's rows get in an erasure, after a deleted parent takes
/// its children with it.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Delete,
    Columns(BTreeMap<String, Strategy>),
    Nothing,
}

/// The counts `connectors preview` prints per table.
#[derive(Debug, Clone)]
pub struct TablePreview {
    pub table: String,
    pub rows: i64,
    /// `delete`, `erase` (columns), `keep` (kept, columns erased) or `none`.
    pub action: &'static str,
}

fn db_error(what: &str, e: sqlx::Error) -> anyhow::Error {
    let detail: String = format!("{what}: {e}")
        .chars()
        .filter(|c| !c.is_control())
        .take(400)
        .collect();
    // A refusal by the database (rights, constraints) needs a person; a
    // lost connection is worth another try.
    match e {
        sqlx::Error::Database(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            anyhow::Error::new(CallError::Refused { status: 0, detail })
        }
        _ => anyhow::Error::new(CallError::Unavailable(detail)),
    }
}

impl SqlSystem {
    /// Reads the mapping, connects and checks it against the live schema.
    /// Every problem comes back as one line naming the table and column.
    pub async fn connect(
        id: &str,
        rest: &toml::Table,
        hash_key: [u8; 32],
        tz: chrono_tz::Tz,
    ) -> anyhow::Result<SqlSystem> {
        let at = format!("connector {id}");
        let map = mapping::parse(rest).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let tables =
            mapping::resolve(&map, &at).map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
        let url = std::env::var(&map.url_env).map_err(|_| {
            anyhow::anyhow!("{at}: environment variable {} is not set", map.url_env)
        })?;
        let (backend, pool) = db::connect(&url).await.map_err(|e| {
            anyhow::anyhow!(
                "{at}: cannot connect to the database in {}: {e}",
                map.url_env
            )
        })?;
        let schema = schema::load(backend, &pool)
            .await
            .map_err(|e| anyhow::anyhow!("{at}: cannot read the database's schema: {e}"))?;
        let mut sys = SqlSystem {
            id: id.to_string(),
            backend,
            pool,
            map,
            tables,
            schema,
            hash_key: SecretBox::new(Box::new(hash_key)),
            tz,
        };
        let problems = sys.verify();
        if !problems.is_empty() {
            sys.pool.close().await;
            anyhow::bail!("{at}: {}", problems.join("; "));
        }
        Ok(sys)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Every mapped table and column against the live schema; fills in
    /// keys the file left to the schema.
    fn verify(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.schema;
        let a = &self.map.account;
        let need = |t: &str, cols: &[&str], out: &mut Vec<String>| match s.table(t) {
            None => out.push(s.missing_table(t)),
            Some(info) => {
                for c in cols {
                    if info.col(c).is_none() {
                        out.push(s.missing_column(t, c));
                    }
                }
            }
        };
        need(&a.table, &[&a.key, &a.email], &mut out);
        let k = a.knowledge_table.as_deref().unwrap_or(&a.table);
        need(k, &[&a.key, &a.postcode, &a.house_number], &mut out);
        let mut keys = Vec::new();
        for t in &self.tables {
            let Some(info) = s.table(&t.table) else {
                out.push(s.missing_table(&t.table));
                keys.push(None);
                continue;
            };
            let key = match &t.key {
                Some(k) => {
                    need(&t.table, &[k.as_str()], &mut out);
                    Some(k.clone())
                }
                None if info.primary_key.len() == 1 => Some(info.primary_key[0].clone()),
                None => {
                    out.push(format!(
                        "table `{}` has no single-column primary key: set `key` in its entry",
                        t.table
                    ));
                    None
                }
            };
            keys.push(key.clone());
            match &t.link {
                Link::Account => {}
                Link::Column(c) | Link::Parent { column: c, .. } => {
                    need(&t.table, &[c.as_str()], &mut out)
                }
                Link::ReferencedBy { from, column } => {
                    need(&self.tables[*from].table, &[column.as_str()], &mut out)
                }
            }
            for c in &t.skip_export {
                need(&t.table, &[c.as_str()], &mut out);
                if key.as_deref() == Some(c) {
                    out.push(format!(
                        "`{}.{c}` is the key: the export pages by it, it cannot be skipped",
                        t.table
                    ));
                }
            }
            if let Erase::Columns(cols) = &t.erase {
                for (c, strategy) in cols {
                    let Some(col) = info.col(c) else {
                        out.push(s.missing_column(&t.table, c));
                        continue;
                    };
                    let name = format!("{}.{c}", t.table);
                    match strategy {
                        Strategy::Null if !col.nullable => out.push(format!(
                            "column `{name}` is NOT NULL: use \"mask\" instead of \"null\""
                        )),
                        Strategy::Mask if col.kind == Kind::Other && !col.nullable => {
                            out.push(format!(
                                "column `{name}` ({}) has no neutral value to mask with: use \"null\" or \"keep\"",
                                col.type_name
                            ))
                        }
                        Strategy::Hash if col.kind != Kind::Text => out.push(format!(
                            "column `{name}` is not text: \"hash\" writes 64 hexadecimal characters"
                        )),
                        Strategy::Hash if col.max_len.is_some_and(|n| n < 64) => {
                            out.push(format!(
                                "column `{name}` holds fewer than 64 characters: too short for \"hash\""
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
        for (t, k) in self.tables.iter_mut().zip(keys) {
            t.key = k;
        }
        out
    }

    /// Mapped columns that find rows but lead no index: each look-up
    /// would read the whole table.
    pub fn index_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let warn = |table: &str, col: &str, out: &mut Vec<String>| {
            if let Some(info) = self.schema.table(table) {
                if !info.indexed.contains(col) {
                    out.push(format!(
                        "`{table}.{col}` has no index: CREATE INDEX ON {table} ({col})"
                    ));
                }
            }
        };
        for t in &self.tables {
            match &t.link {
                Link::Column(c) | Link::Parent { column: c, .. } => warn(&t.table, c, &mut out),
                Link::ReferencedBy { .. } | Link::Account => {}
            }
        }
        let a = &self.map.account;
        if let Some(info) = self.schema.table(&a.table) {
            // PostgreSQL and SQLite compare lower(email): an expression
            // index does not show as a column index (the docs name it).
            if !info.indexed.contains(&a.email) && self.backend == Backend::MySql {
                warn(&a.table, &a.email, &mut out);
            }
        }
        out
    }

    fn info(&self, table: &str) -> &TableInfo {
        // verify() made sure every mapped table exists.
        self.schema
            .table(table)
            .expect("mapped tables are checked at start")
    }

    fn col(&self, table: &str, col: &str) -> &Col {
        self.info(table)
            .col(col)
            .expect("mapped columns are checked at start")
    }

    fn key_of(&self, i: usize) -> &str {
        self.tables[i]
            .key
            .as_deref()
            .expect("keys are resolved at start")
    }

    fn account_index(&self) -> usize {
        self.tables
            .iter()
            .position(|t| t.link == Link::Account)
            .expect("the account table is mapped")
    }

    /// The account id as a value for `col` (a number for an integer
    /// column: PostgreSQL does not compare integers with text).
    fn typed(col: &Col, v: &str) -> anyhow::Result<Bind> {
        Ok(match col.kind {
            Kind::Int => Bind::Int(v.trim().parse().map_err(|_| CallError::Refused {
                status: 0,
                detail: format!("account id is not a number for `{}`", col.name),
            })?),
            _ => Bind::Text(v.to_string()),
        })
    }

    fn json_bind(v: &Value) -> Bind {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Bind::Int(i),
                None => Bind::Text(n.to_string()),
            },
            Value::String(s) => Bind::Text(s.clone()),
            other => Bind::Text(other.to_string()),
        }
    }

    fn qcol(&self, table: &str, col: &str) -> String {
        format!("{}.{}", self.backend.quote(table), self.backend.quote(col))
    }

    /// `WHERE` condition selecting table `i`'s rows of the account.
    /// `pre` holds the keys of referenced tables collected before an
    /// erasure changed the rows that point at them.
    fn cond(
        &self,
        q: &mut Q,
        i: usize,
        acc: &str,
        pre: &BTreeMap<usize, Vec<Value>>,
    ) -> anyhow::Result<()> {
        let t = &self.tables[i];
        match &t.link {
            Link::Account => {
                let key = &self.map.account.key;
                let col = self.col(&t.table, key);
                q.push(&self.qcol(&t.table, key)).push(" = ");
                q.bind(Self::typed(col, acc)?, col.pg_cast());
            }
            Link::Column(c) => {
                let col = self.col(&t.table, c);
                q.push(&self.qcol(&t.table, c)).push(" = ");
                q.bind(Self::typed(col, acc)?, col.pg_cast());
            }
            Link::Parent { parent, column } => {
                let p = &self.tables[*parent];
                q.push(&self.qcol(&t.table, column))
                    .push(" IN (SELECT ")
                    .push(&self.qcol(&p.table, self.key_of(*parent)))
                    .push(" FROM ")
                    .ident(&p.table)
                    .push(" WHERE ");
                self.cond(q, *parent, acc, pre)?;
                q.push(")");
            }
            Link::ReferencedBy { from, column } => {
                let key = self.key_of(i);
                if let Some(keys) = pre.get(&i) {
                    if keys.is_empty() {
                        q.push("1 = 0");
                        return Ok(());
                    }
                    let cast = self.col(&t.table, key).pg_cast().map(str::to_string);
                    q.push(&self.qcol(&t.table, key)).push(" IN (");
                    for (n, k) in keys.iter().enumerate() {
                        if n > 0 {
                            q.push(", ");
                        }
                        q.bind(Self::json_bind(k), cast.as_deref());
                    }
                    q.push(")");
                } else {
                    let f = &self.tables[*from];
                    q.push(&self.qcol(&t.table, key))
                        .push(" IN (SELECT ")
                        .push(&self.qcol(&f.table, column))
                        .push(" FROM ")
                        .ident(&f.table)
                        .push(" WHERE ");
                    self.cond(q, *from, acc, pre)?;
                    q.push(")");
                }
            }
        }
        Ok(())
    }

    /// The export's column list: PostgreSQL values the renderer cannot
    /// read natively (numeric, uuid, json, …) come as their text.
    fn select_list(&self, i: usize) -> String {
        let t = &self.tables[i];
        let info = self.info(&t.table);
        info.columns
            .iter()
            .filter(|c| !t.skip_export.contains(&c.name))
            .map(|c| {
                let qc = self.qcol(&t.table, &c.name);
                let alias = self.backend.quote(&c.name);
                match (self.backend, c.kind) {
                    (Backend::Postgres, Kind::Int) => format!("CAST({qc} AS int8) AS {alias}"),
                    (Backend::Postgres, Kind::Float) => {
                        format!("CAST({qc} AS float8) AS {alias}")
                    }
                    (Backend::Postgres, Kind::Time | Kind::Other) => {
                        format!("CAST({qc} AS text) AS {alias}")
                    }
                    _ => qc,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// SQLite stores `DECIMAL(10,2)` 100.00 as the integer 100 and dates
    /// as the text it was given: written out as the other backends do
    /// (`"100.00"`, `2024-01-20T06:00:00`).
    fn normalise(&self, i: usize, rows: &mut [Rendered]) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let info = self.info(&self.tables[i].table);
        for c in &info.columns {
            let scale = || -> Option<usize> {
                let (_, rest) = c.type_name.split_once(',')?;
                rest.trim_end_matches(')').trim().parse().ok()
            };
            for r in rows.iter_mut() {
                let Some(v) = r.get_mut(&c.name) else {
                    continue;
                };
                match (c.kind, &*v) {
                    (Kind::Decimal, Value::Number(n)) => {
                        let f = n.as_f64().unwrap_or(0.0);
                        *v = Value::String(match scale() {
                            Some(s) => format!("{f:.s$}"),
                            None => n.to_string(),
                        });
                    }
                    (Kind::Timestamp, Value::String(t))
                        if t.len() >= 19 && t.as_bytes()[10] == b' ' =>
                    {
                        let mut t = t.clone();
                        t.replace_range(10..11, "T");
                        *v = Value::String(t);
                    }
                    _ => {}
                }
            }
        }
    }

    async fn fetch(&self, q: &Q, what: &str) -> anyhow::Result<Vec<Rendered>> {
        self.pool.fetch(q).await.map_err(|e| db_error(what, e))
    }

    fn id_of(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// `lower(email) = $1` (PostgreSQL, SQLite); MariaDB's usual
    /// collations compare case-insensitively already, and keep the index.
    fn email_is(&self, q: &mut Q, email: &str) {
        let a = &self.map.account;
        let col = self.qcol(&a.table, &a.email);
        match self.backend {
            Backend::MySql => q.push(&col).push(" = "),
            _ => q.push("lower(").push(&col).push(") = "),
        };
        q.bind(Bind::Text(email.to_lowercase()), None);
    }

    /// The operator's SQL with `:account` bound as the account key's type.
    fn operator_sql(&self, sql: &str, acc: &str) -> anyhow::Result<Q> {
        let (text, n) = mapping::placeholders(sql, self.backend == Backend::Postgres);
        let a = &self.map.account;
        let v = Self::typed(self.col(&a.table, &a.key), acc)?;
        let mut q = Q::new(self.backend);
        q.push(&text);
        q.binds = vec![v; n];
        Ok(q)
    }

    /// The operator's SQL with `:before` bound as a moment.
    fn before_sql(&self, sql: &str, before: DateTime<Utc>) -> Q {
        let (text, n) =
            mapping::placeholders_named(sql, ":before", self.backend == Backend::Postgres);
        let mut q = Q::new(self.backend);
        q.push(&text);
        // SQLite keeps moments as text in its own `datetime()` form; the
        // others compare a typed timestamp.
        q.binds = (0..n)
            .map(|_| match self.backend {
                Backend::Sqlite => Bind::Text(before.format("%Y-%m-%d %H:%M:%S").to_string()),
                _ => Bind::Time(before),
            })
            .collect();
        q
    }

    fn hmac(&self, value: &str) -> String {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.hash_key.expose_secret())
            .expect("hmac takes any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The value `mask` writes, as SQL: a bound text, or the type's
    /// neutral constant.
    fn mask_value(&self, q: &mut Q, col: &Col) {
        let pg = self.backend == Backend::Postgres;
        match col.kind {
            Kind::Text => {
                let n = col.max_len.map(|n| n.max(0) as usize).unwrap_or(MASK.len());
                q.bind(Bind::Text(MASK.chars().take(n).collect()), None);
            }
            Kind::Int | Kind::Float | Kind::Decimal => {
                q.push("0");
            }
            Kind::Bool => {
                q.push("FALSE");
            }
            Kind::Date => {
                q.push(if pg {
                    "DATE '1970-01-01'"
                } else {
                    "'1970-01-01'"
                });
            }
            // MariaDB's TIMESTAMP starts one second after the epoch.
            Kind::Timestamp => {
                q.push(match self.backend {
                    Backend::Postgres => "TIMESTAMP '1970-01-01 00:00:00'",
                    Backend::MySql => "'1970-01-01 00:00:01'",
                    Backend::Sqlite => "'1970-01-01 00:00:00'",
                });
            }
            Kind::TimestampTz => {
                q.push("TIMESTAMPTZ '1970-01-01 00:00:00+00'");
            }
            Kind::Time => {
                q.push(if pg { "TIME '00:00:00'" } else { "'00:00:00'" });
            }
            Kind::Bytes => {
                q.push(if pg { "decode('', 'hex')" } else { "X''" });
            }
            Kind::Other => {
                q.push("NULL");
            }
        }
    }

    /// Each table's action, a deleted parent taking its children along.
    fn actions(&self) -> Vec<Action> {
        fn of(s: &SqlSystem, i: usize) -> Action {
            let t = &s.tables[i];
            match &t.erase {
                Erase::Delete => Action::Delete,
                Erase::Columns(c) => Action::Columns(c.clone()),
                Erase::Nothing => match t.link {
                    Link::Parent { parent, .. } if of(s, parent) == Action::Delete => {
                        Action::Delete
                    }
                    _ => Action::Nothing,
                },
            }
        }
        (0..self.tables.len()).map(|i| of(self, i)).collect()
    }

    /// Children before parents; a referenced row after the rows that
    /// point at it.
    fn depth(&self, i: usize) -> i64 {
        match &self.tables[i].link {
            Link::Account => 0,
            Link::Column(_) => 1,
            Link::Parent { parent, .. } => self.depth(*parent) + 1,
            Link::ReferencedBy { from, .. } => self.depth(*from) - 1,
        }
    }

    async fn count(
        &self,
        tx: &mut db::Tx,
        i: usize,
        acc: &str,
        pre: &BTreeMap<usize, Vec<Value>>,
    ) -> anyhow::Result<i64> {
        let t = &self.tables[i];
        let mut q = Q::new(self.backend);
        q.push("SELECT COUNT(*) AS n FROM ")
            .ident(&t.table)
            .push(" WHERE ");
        self.cond(&mut q, i, acc, pre)?;
        let rows = tx
            .fetch(&q)
            .await
            .map_err(|e| db_error(&format!("counting {}", t.table), e))?;
        Ok(rows
            .first()
            .and_then(|r| r.get("n"))
            .and_then(Value::as_i64)
            .unwrap_or(0))
    }

    /// Keys of the referenced tables, read before anything changes.
    async fn collect_referenced(
        &self,
        tx: &mut db::Tx,
        acc: &str,
    ) -> anyhow::Result<BTreeMap<usize, Vec<Value>>> {
        let mut pre = BTreeMap::new();
        for (i, t) in self.tables.iter().enumerate() {
            if !matches!(t.link, Link::ReferencedBy { .. }) {
                continue;
            }
            let mut q = Q::new(self.backend);
            let key = self.key_of(i);
            q.push("SELECT ")
                .push(&self.key_expr(i))
                .push(" AS k FROM ")
                .ident(&t.table)
                .push(" WHERE ");
            self.cond(&mut q, i, acc, &BTreeMap::new())?;
            let rows = tx
                .fetch(&q)
                .await
                .map_err(|e| db_error(&format!("reading {}.{key}", t.table), e))?;
            pre.insert(
                i,
                rows.into_iter()
                    .filter_map(|mut r| r.remove("k"))
                    .filter(|v| !v.is_null())
                    .collect(),
            );
        }
        Ok(pre)
    }

    /// The key as the renderer reads it (text for PostgreSQL's uuid and
    /// friends, a 64-bit integer for its integer types).
    fn key_expr(&self, i: usize) -> String {
        let t = &self.tables[i];
        let key = self.key_of(i);
        let qc = self.qcol(&t.table, key);
        match (self.backend, self.col(&t.table, key).kind) {
            (Backend::Postgres, Kind::Int) => format!("CAST({qc} AS int8)"),
            (Backend::Postgres, Kind::Text) => qc,
            (Backend::Postgres, _) => format!("CAST({qc} AS text)"),
            _ => qc,
        }
    }

    async fn erase_columns(
        &self,
        tx: &mut db::Tx,
        i: usize,
        cols: &BTreeMap<String, Strategy>,
        acc: &str,
        pre: &BTreeMap<usize, Vec<Value>>,
    ) -> anyhow::Result<()> {
        let t = &self.tables[i];
        // `hash`: one UPDATE per distinct value (usually one address),
        // skipping values that are already a hash so a repeat changes
        // nothing.
        for (c, _) in cols.iter().filter(|(_, s)| **s == Strategy::Hash) {
            let qc = self.qcol(&t.table, c);
            let mut q = Q::new(self.backend);
            q.push("SELECT DISTINCT ")
                .push(&qc)
                .push(" AS v FROM ")
                .ident(&t.table)
                .push(" WHERE ");
            self.cond(&mut q, i, acc, pre)?;
            q.push(" AND ").push(&qc).push(" IS NOT NULL");
            let values = tx
                .fetch(&q)
                .await
                .map_err(|e| db_error(&format!("reading {}.{c}", t.table), e))?;
            for v in values
                .iter()
                .filter_map(|r| r.get("v").and_then(Value::as_str))
            {
                if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let mut q = Q::new(self.backend);
                q.push("UPDATE ")
                    .ident(&t.table)
                    .push(" SET ")
                    .ident(c)
                    .push(" = ");
                q.bind(Bind::Text(self.hmac(v)), None);
                q.push(" WHERE ");
                self.cond(&mut q, i, acc, pre)?;
                q.push(" AND ").push(&qc).push(" = ");
                q.bind(Bind::Text(v.to_string()), None);
                tx.execute(&q)
                    .await
                    .map_err(|e| db_error(&format!("hashing {}.{c}", t.table), e))?;
            }
        }
        let plain: Vec<(&String, &Strategy)> = cols
            .iter()
            .filter(|(_, s)| matches!(s, Strategy::Null | Strategy::Mask))
            .collect();
        if plain.is_empty() {
            return Ok(());
        }
        let mut q = Q::new(self.backend);
        q.push("UPDATE ").ident(&t.table).push(" SET ");
        for (n, (c, s)) in plain.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.ident(c).push(" = ");
            match s {
                Strategy::Null => {
                    q.push("NULL");
                }
                _ => self.mask_value(&mut q, self.col(&t.table, c)),
            }
        }
        q.push(" WHERE ");
        self.cond(&mut q, i, acc, pre)?;
        let names: Vec<&str> = plain.iter().map(|(c, _)| c.as_str()).collect();
        tx.execute(&q)
            .await
            .map_err(|e| db_error(&format!("erasing {} ({})", t.table, names.join(", ")), e))?;
        Ok(())
    }

    async fn erase_in(&self, tx: &mut db::Tx, acc: &str) -> anyhow::Result<ErasureReceipt> {
        let pre = self.collect_referenced(tx, acc).await?;
        let actions = self.actions();
        let mut counts = vec![0i64; self.tables.len()];
        for (i, a) in actions.iter().enumerate() {
            if *a != Action::Nothing || self.tables[i].keep.is_some() {
                counts[i] = self.count(tx, i, acc, &pre).await?;
            }
        }
        for (i, a) in actions.iter().enumerate() {
            if let Action::Columns(cols) = a {
                if counts[i] > 0 {
                    self.erase_columns(tx, i, cols, acc, &pre).await?;
                }
            }
        }
        let mut order: Vec<usize> = (0..self.tables.len())
            .filter(|i| actions[*i] == Action::Delete)
            .collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.depth(*i)));
        for i in order {
            let t = &self.tables[i];
            let mut q = Q::new(self.backend);
            q.push("DELETE FROM ").ident(&t.table).push(" WHERE ");
            self.cond(&mut q, i, acc, &pre)?;
            counts[i] = tx
                .execute(&q)
                .await
                .map_err(|e| db_error(&format!("deleting from {}", t.table), e))?
                as i64;
        }
        let mut receipt = ErasureReceipt::default();
        for (i, t) in self.tables.iter().enumerate() {
            if counts[i] == 0 {
                continue;
            }
            match (&t.keep, &actions[i]) {
                (Some(k), _) => {
                    let reason = k.reason.en.clone();
                    match receipt
                        .retained
                        .iter_mut()
                        .find(|r| r.category == t.category && r.reason == reason)
                    {
                        Some(r) => r.count += counts[i],
                        None => receipt.retained.push(Retained {
                            category: t.category.clone(),
                            count: counts[i],
                            reason,
                        }),
                    }
                }
                (None, Action::Delete | Action::Columns(_)) => {
                    let cat = if t.link == Link::Account {
                        "profile".to_string()
                    } else {
                        t.category.clone()
                    };
                    if !receipt.deleted.contains(&cat) {
                        receipt.deleted.push(cat);
                    }
                }
                (None, Action::Nothing) => {}
            }
        }
        Ok(receipt)
    }

    /// Per table: how many rows of this account an erasure would delete,
    /// erase or keep. Reads only.
    pub async fn preview(&self, acc: &AccountRef) -> anyhow::Result<Vec<TablePreview>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("connecting", e))?;
        let pre = BTreeMap::new();
        let actions = self.actions();
        let mut out = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            let rows = self.count(&mut tx, i, &acc.id, &pre).await?;
            let action = match (&t.keep, &actions[i]) {
                (Some(_), _) => "keep",
                (None, Action::Delete) => "delete",
                (None, Action::Columns(_)) => "erase",
                (None, Action::Nothing) => "none",
            };
            out.push(TablePreview {
                table: t.table.clone(),
                rows,
                action,
            });
        }
        drop(tx);
        Ok(out)
    }

    /// `SELECT 1`, for `connectors check`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut q = Q::new(self.backend);
        q.push("SELECT 1 AS one");
        self.fetch(&q, "ping").await.map(|_| ())
    }

    fn parse_until(&self, v: Option<&Value>) -> Option<NaiveDate> {
        let s = v?.as_str()?;
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(d);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&self.tz).date_naive());
        }
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|t| t.date())
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "y" | "yes"
        ),
        _ => false,
    }
}

#[async_trait]
impl Connector for SqlSystem {
    async fn find_account(&self, email: &Email) -> anyhow::Result<Option<AccountRef>> {
        let a = &self.map.account;
        let ai = self.account_index();
        let mut q = Q::new(self.backend);
        q.push("SELECT ")
            .push(&self.key_expr(ai))
            .push(" AS k FROM ")
            .ident(&a.table)
            .push(" WHERE ");
        self.email_is(&mut q, email.as_str());
        q.push(" ORDER BY ").push(&self.qcol(&a.table, &a.key));
        q.push(" LIMIT 1");
        let rows = self.fetch(&q, "looking up the account").await?;
        Ok(rows
            .first()
            .and_then(|r| Self::id_of(r.get("k")))
            .map(|id| AccountRef { id }))
    }

    async fn check_knowledge(
        &self,
        acc: &AccountRef,
        claim: &KnowledgeClaim<'_>,
    ) -> anyhow::Result<bool> {
        let a = &self.map.account;
        let table = a.knowledge_table.as_deref().unwrap_or(&a.table);
        let key = self.col(table, &a.key);
        let mut q = Q::new(self.backend);
        q.push("SELECT ")
            .ident(&a.postcode)
            .push(" AS pc, ")
            .ident(&a.house_number)
            .push(" AS hn FROM ")
            .ident(table)
            .push(" WHERE ")
            .ident(&a.key)
            .push(" = ");
        q.bind(Self::typed(key, &acc.id)?, key.pg_cast());
        let rows = self.fetch(&q, "checking the address").await?;
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        // Every row compared, so timing does not tell which one matched.
        let mut any = false;
        for r in &rows {
            let pc = crate::domain::knowledge::matches(claim.postcode, &text(r.get("pc")));
            let hn = crate::domain::knowledge::matches(claim.house_number, &text(r.get("hn")));
            any |= pc & hn;
        }
        Ok(any)
    }

    async fn deletion_blockers(
        &self,
        acc: &AccountRef,
        _now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Blocker>> {
        let mut out = Vec::new();
        let mut open = 0;
        for (i, b) in self.map.blockers.iter().enumerate() {
            let q = self.operator_sql(&b.sql, &acc.id)?;
            let rows = self
                .fetch(&q, &format!("blockers[{i}] ({})", b.reason))
                .await?;
            for r in rows {
                let until = self.parse_until(r.get("until"));
                match (b.reason.as_str(), until) {
                    ("open_order", _) => open += 1,
                    ("recent_direct_debit", Some(possible_from)) => {
                        out.push(Blocker::RecentDirectDebit { possible_from })
                    }
                    ("outstanding_balance", _) => out.push(Blocker::OutstandingBalance {
                        cents: r.get("cents").and_then(Value::as_i64).unwrap_or(0),
                    }),
                    (reason, until) => out.push(Blocker::Other {
                        detail: Some(match until {
                            Some(d) => format!("{reason} (until {d})"),
                            None => reason.to_string(),
                        }),
                    }),
                }
            }
        }
        if open > 0 {
            out.insert(0, Blocker::OpenOrder { orders: open });
        }
        Ok(out)
    }

    async fn erase(&self, acc: &AccountRef, _request_id: &str) -> anyhow::Result<EraseOutcome> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("starting the erasure", e))?;
        // On any error the transaction is dropped: rolled back whole.
        let receipt = self.erase_in(&mut tx, &acc.id).await?;
        tx.commit()
            .await
            .map_err(|e| db_error("committing the erasure", e))?;
        Ok(EraseOutcome::Done(receipt))
    }

    async fn change_email(
        &self,
        acc: &AccountRef,
        new: &Email,
        _request_id: &str,
    ) -> anyhow::Result<EmailChange> {
        let a = &self.map.account;
        let ai = self.account_index();
        let key = self.col(&a.table, &a.key);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("starting the email change", e))?;
        let mut q = Q::new(self.backend);
        q.push("SELECT ")
            .push(&self.key_expr(ai))
            .push(" AS k FROM ")
            .ident(&a.table)
            .push(" WHERE ");
        self.email_is(&mut q, new.as_str());
        q.push(" AND ")
            .push(&self.qcol(&a.table, &a.key))
            .push(" <> ");
        q.bind(Self::typed(key, &acc.id)?, key.pg_cast());
        q.push(" LIMIT 1");
        let rows = tx
            .fetch(&q)
            .await
            .map_err(|e| db_error("looking up the new address", e))?;
        if let Some(other) = rows.first().and_then(|r| Self::id_of(r.get("k"))) {
            return Ok(EmailChange::Taken(AccountRef { id: other }));
        }
        let mut q = Q::new(self.backend);
        q.push("UPDATE ")
            .ident(&a.table)
            .push(" SET ")
            .ident(&a.email)
            .push(" = ");
        q.bind(Bind::Text(new.as_str().to_string()), None);
        q.push(" WHERE ").ident(&a.key).push(" = ");
        q.bind(Self::typed(key, &acc.id)?, key.pg_cast());
        tx.execute(&q)
            .await
            .map_err(|e| db_error(&format!("changing {}.{}", a.table, a.email), e))?;
        tx.commit()
            .await
            .map_err(|e| db_error("committing the email change", e))?;
        Ok(EmailChange::Changed)
    }

    /// Cursor: `{table index}:{last key as JSON}` (empty: from the start);
    /// keyset pages, so a page costs the same at row one million.
    async fn export_records(
        &self,
        acc: &AccountRef,
        cursor: Option<&str>,
    ) -> anyhow::Result<RecordPage> {
        let ai = self.account_index();
        let next_table = |from: usize| (from..self.tables.len()).find(|i| *i != ai);
        let Some(cursor) = cursor else {
            let t = &self.tables[ai];
            let mut q = Q::new(self.backend);
            q.push("SELECT ")
                .push(&self.select_list(ai))
                .push(" FROM ")
                .ident(&t.table)
                .push(" WHERE ");
            self.cond(&mut q, ai, &acc.id, &BTreeMap::new())?;
            let mut rows = self.fetch(&q, &format!("exporting {}", t.table)).await?;
            self.normalise(ai, &mut rows);
            return Ok(RecordPage {
                records: rows
                    .into_iter()
                    .map(|r| ("profile".to_string(), Value::Object(r)))
                    .collect(),
                next: next_table(0).map(|i| format!("{i}:")),
            });
        };
        let (i, after) = cursor
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("bad export cursor"))?;
        let mut i: usize = i.parse()?;
        let mut after: Option<Value> = match after {
            "" => None,
            k => Some(serde_json::from_str(k)?),
        };
        while i < self.tables.len() {
            let t = &self.tables[i];
            let key = self.key_of(i);
            let keycol = self.col(&t.table, key);
            let mut q = Q::new(self.backend);
            q.push("SELECT ")
                .push(&self.select_list(i))
                .push(" FROM ")
                .ident(&t.table)
                .push(" WHERE ");
            self.cond(&mut q, i, &acc.id, &BTreeMap::new())?;
            if let Some(k) = &after {
                q.push(" AND ").push(&self.qcol(&t.table, key)).push(" > ");
                q.bind(Self::json_bind(k), keycol.pg_cast());
            }
            q.push(" ORDER BY ")
                .push(&self.qcol(&t.table, key))
                .push(&format!(" LIMIT {PAGE}"));
            let mut rows = self.fetch(&q, &format!("exporting {}", t.table)).await?;
            self.normalise(i, &mut rows);
            if rows.is_empty() {
                match next_table(i + 1) {
                    Some(n) => {
                        i = n;
                        after = None;
                        continue;
                    }
                    None => return Ok(RecordPage::default()),
                }
            }
            let next = if (rows.len() as i64) < PAGE {
                next_table(i + 1).map(|n| format!("{n}:"))
            } else {
                let last = rows
                    .last()
                    .and_then(|r| r.get(key))
                    .cloned()
                    .unwrap_or(Value::Null);
                Some(format!("{i}:{last}"))
            };
            return Ok(RecordPage {
                records: rows
                    .into_iter()
                    .map(|r| (t.category.clone(), Value::Object(r)))
                    .collect(),
                next,
            });
        }
        Ok(RecordPage::default())
    }

    async fn consents(
        &self,
        acc: &AccountRef,
    ) -> anyhow::Result<std::collections::BTreeMap<String, bool>> {
        let mut out = BTreeMap::new();
        for c in &self.map.consents {
            let q = self.operator_sql(&c.read, &acc.id)?;
            let rows = self
                .fetch(&q, &format!("reading consent {}", c.key))
                .await?;
            let given = rows.first().is_some_and(|r| truthy(r.values().next()));
            out.insert(c.key.clone(), given);
        }
        Ok(out)
    }

    async fn inactive(
        &self,
        before: DateTime<Utc>,
        cursor: Option<&str>,
    ) -> anyhow::Result<crate::connector::InactivePage> {
        let Some(i) = &self.map.inactivity else {
            anyhow::bail!("the mapping has no [connectors.inactivity]");
        };
        if cursor.is_some() {
            // The operator's query is read whole, in one page.
            return Ok(Default::default());
        }
        let q = self.before_sql(&i.list, before);
        let rows = self.fetch(&q, "inactivity.list").await?;
        let mut accounts = Vec::with_capacity(rows.len());
        for r in rows {
            let s = |k: &str| match r.get(k) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            let (Some(account), Some(email)) = (s("account"), s("email")) else {
                anyhow::bail!("inactivity.list must return the columns account and email");
            };
            let Some(last_activity) = s("last_activity").and_then(|t| parse_moment(&t)) else {
                anyhow::bail!("inactivity.list: last_activity is missing or not a date and time");
            };
            accounts.push(crate::connector::InactiveAccount {
                account,
                email,
                locale: s("locale"),
                last_activity,
            });
        }
        Ok(crate::connector::InactivePage {
            accounts,
            next: None,
        })
    }

    async fn record_activity(&self, acc: &AccountRef, _at: DateTime<Utc>) -> anyhow::Result<()> {
        let Some(i) = &self.map.inactivity else {
            anyhow::bail!("the mapping has no [connectors.inactivity]");
        };
        let q = self.operator_sql(&i.touch, &acc.id)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("starting inactivity.touch", e))?;
        tx.execute(&q)
            .await
            .map_err(|e| db_error("inactivity.touch", e))?;
        tx.commit()
            .await
            .map_err(|e| db_error("committing inactivity.touch", e))?;
        Ok(())
    }

    async fn purge(&self, category: &str, before: DateTime<Utc>) -> anyhow::Result<Option<u64>> {
        let list: Vec<_> = self
            .map
            .retention
            .iter()
            .filter(|r| r.category == category)
            .collect();
        if list.is_empty() {
            return Ok(None);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("starting retention", e))?;
        let mut n = 0;
        for r in list {
            let q = self.before_sql(&r.sql, before);
            n += tx
                .execute(&q)
                .await
                .map_err(|e| db_error(&format!("retention of {category}"), e))?;
        }
        tx.commit()
            .await
            .map_err(|e| db_error("committing retention", e))?;
        Ok(Some(n))
    }

    async fn apply_objections(
        &self,
        acc: &AccountRef,
        keys: &[String],
        _request_id: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("starting the objection", e))?;
        for c in self.map.consents.iter().filter(|c| keys.contains(&c.key)) {
            let q = self.operator_sql(&c.stop, &acc.id)?;
            tx.execute(&q)
                .await
                .map_err(|e| db_error(&format!("stopping consent {}", c.key), e))?;
        }
        tx.commit()
            .await
            .map_err(|e| db_error("committing the objection", e))?;
        Ok(())
    }
}

/// A moment as a database renders it: RFC 3339, or a naive date and time
/// (taken as UTC), or a date.
fn parse_moment(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
