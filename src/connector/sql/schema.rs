//! The live schema: which tables and columns exist, their types (to read,
//! bind and mask them right), primary keys, and which columns lead an
//! index (for `connectors check`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::db::{Backend, Pool, Q};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Decimal,
    Bool,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    Bytes,
    Other,
}

#[derive(Debug, Clone)]
pub struct Col {
    pub name: String,
    pub kind: Kind,
    /// The database's own type name (`int4`, `varchar(100)`, `DATE`).
    pub type_name: String,
    pub nullable: bool,
    pub max_len: Option<i64>,
}

impl Col {
    /// The PostgreSQL type a bound text value is cast to before it meets
    /// this column (none for text and integer columns).
    pub fn pg_cast(&self) -> Option<&str> {
        match self.kind {
            Kind::Text | Kind::Int => None,
            _ => Some(&self.type_name),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub columns: Vec<Col>,
    pub primary_key: Vec<String>,
    /// Columns that are the first column of some index.
    pub indexed: BTreeSet<String>,
}

impl TableInfo {
    pub fn col(&self, name: &str) -> Option<&Col> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub tables: BTreeMap<String, TableInfo>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.get(name)
    }

    /// "does not exist", with the spelling the database uses when only
    /// the case differs.
    pub fn missing_table(&self, name: &str) -> String {
        match self.tables.keys().find(|t| t.eq_ignore_ascii_case(name)) {
            Some(t) => format!("table `{name}` does not exist (the database has `{t}`)"),
            None => format!("table `{name}` does not exist (or the database user may not read it)"),
        }
    }

    pub fn missing_column(&self, table: &str, col: &str) -> String {
        let hint = self
            .table(table)
            .and_then(|t| t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(col)));
        match hint {
            Some(c) => format!(
                "column `{table}.{col}` does not exist (the database has `{}`)",
                c.name
            ),
            None => format!(
                "column `{table}.{col}` does not exist (or the database user may not read it)"
            ),
        }
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        // information_schema columns are binary strings on some MySQL
        // versions; the renderer gave them as base64.
        _ => String::new(),
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::String(s)) => matches!(s.as_str(), "YES" | "yes" | "1" | "true"),
        _ => false,
    }
}

fn kind_pg(data_type: &str) -> Kind {
    match data_type {
        "smallint" | "integer" | "bigint" => Kind::Int,
        "real" | "double precision" => Kind::Float,
        "numeric" | "money" => Kind::Decimal,
        "boolean" => Kind::Bool,
        "text" | "character varying" | "character" | "citext" => Kind::Text,
        "date" => Kind::Date,
        "timestamp without time zone" => Kind::Timestamp,
        "timestamp with time zone" => Kind::TimestampTz,
        "time without time zone" => Kind::Time,
        "bytea" => Kind::Bytes,
        _ => Kind::Other,
    }
}

fn kind_my(data_type: &str, column_type: &str) -> Kind {
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => Kind::Bool,
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year" => Kind::Int,
        "float" | "double" => Kind::Float,
        "decimal" => Kind::Decimal,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => Kind::Text,
        "date" => Kind::Date,
        "datetime" | "timestamp" => Kind::Timestamp,
        "time" => Kind::Time,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
        _ => Kind::Other,
    }
}

/// SQLite's type affinity rules, plus the declared names people use for
/// dates and flags.
fn kind_lite(declared: &str) -> Kind {
    let d = declared.to_ascii_uppercase();
    let base = d.split('(').next().unwrap_or("").trim();
    match base {
        "BOOLEAN" | "BOOL" => Kind::Bool,
        "DATE" => Kind::Date,
        "DATETIME" | "TIMESTAMP" => Kind::Timestamp,
        "TIME" => Kind::Time,
        _ if d.contains("INT") => Kind::Int,
        _ if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") => Kind::Text,
        _ if d.contains("BLOB") => Kind::Bytes,
        _ if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") => Kind::Float,
        _ if d.contains("NUMERIC") || d.contains("DECIMAL") => Kind::Decimal,
        _ => Kind::Other,
    }
}

fn max_len_lite(declared: &str) -> Option<i64> {
    let (_, rest) = declared.split_once('(')?;
    rest.split([')', ',']).next()?.trim().parse().ok()
}

pub async fn load(backend: Backend, pool: &Pool) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema::default();
    let (cols, keys, idx) = match backend {
        Backend::Postgres => (
            "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS dt, \
             c.udt_name::text AS udt, c.is_nullable::text AS nullable, \
             c.character_maximum_length::int8 AS len \
             FROM information_schema.columns c \
             WHERE c.table_schema = ANY(current_schemas(false)) ORDER BY c.table_name, c.ordinal_position",
            "SELECT tc.table_name::text AS t, kcu.column_name::text AS c \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu \
               ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name \
             WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = ANY(current_schemas(false))",
            "SELECT t.relname::text AS t, a.attname::text AS c \
             FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] \
             WHERE n.nspname = ANY(current_schemas(false))",
        ),
        Backend::MySql => (
            "SELECT CAST(table_name AS CHAR) AS t, CAST(column_name AS CHAR) AS c, \
             CAST(data_type AS CHAR) AS dt, CAST(column_type AS CHAR) AS udt, \
             CAST(is_nullable AS CHAR) AS nullable, CAST(character_maximum_length AS SIGNED) AS len \
             FROM information_schema.columns WHERE table_schema = DATABASE() \
             ORDER BY table_name, ordinal_position",
            "SELECT CAST(table_name AS CHAR) AS t, CAST(column_name AS CHAR) AS c \
             FROM information_schema.columns WHERE table_schema = DATABASE() AND column_key = 'PRI'",
            "SELECT CAST(table_name AS CHAR) AS t, CAST(column_name AS CHAR) AS c \
             FROM information_schema.statistics WHERE table_schema = DATABASE() AND seq_in_index = 1",
        ),
        Backend::Sqlite => (
            "SELECT m.name AS t, p.name AS c, p.type AS dt, p.type AS udt, \
             CASE WHEN p.\"notnull\" = 0 AND p.pk = 0 THEN 'YES' ELSE 'NO' END AS nullable, NULL AS len \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid",
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.pk > 0",
            "SELECT m.name AS t, ii.name AS c FROM sqlite_master m \
             JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii \
             WHERE m.type = 'table' AND ii.seqno = 0",
        ),
    };
    let q = |s: &str| {
        let mut q = Q::new(backend);
        q.push(s);
        q
    };
    for r in pool.fetch(&q(cols)).await? {
        let (t, c) = (text(r.get("t")), text(r.get("c")));
        let (dt, udt) = (text(r.get("dt")), text(r.get("udt")));
        let (kind, type_name, max_len) = match backend {
            Backend::Postgres => {
                let k = match (dt.as_str(), udt.as_str()) {
                    ("USER-DEFINED", "citext") => Kind::Text,
                    _ => kind_pg(&dt),
                };
                (k, udt, int(r.get("len")))
            }
            Backend::MySql => (
                kind_my(&dt.to_ascii_lowercase(), &udt.to_ascii_lowercase()),
                udt,
                int(r.get("len")),
            ),
            Backend::Sqlite => (kind_lite(&dt), dt.clone(), max_len_lite(&dt)),
        };
        schema.tables.entry(t).or_default().columns.push(Col {
            name: c,
            kind,
            type_name,
            nullable: truthy(r.get("nullable")),
            max_len,
        });
    }
    for r in pool.fetch(&q(keys)).await? {
        if let Some(t) = schema.tables.get_mut(&text(r.get("t"))) {
            t.primary_key.push(text(r.get("c")));
        }
    }
    for r in pool.fetch(&q(idx)).await? {
        if let Some(t) = schema.tables.get_mut(&text(r.get("t"))) {
            t.indexed.insert(text(r.get("c")));
        }
    }
    // A single-column primary key is indexed (SQLite's INTEGER PRIMARY
    // KEY is the rowid, in no index list).
    for t in schema.tables.values_mut() {
        if t.primary_key.len() == 1 {
            let pk = t.primary_key[0].clone();
            t.indexed.insert(pk);
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_declared_types_map_to_kinds() {
        assert_eq!(kind_lite("VARCHAR(100)"), Kind::Text);
        assert_eq!(max_len_lite("VARCHAR(100)"), Some(100));
        assert_eq!(kind_lite("INTEGER"), Kind::Int);
        assert_eq!(kind_lite("BOOLEAN"), Kind::Bool);
        assert_eq!(kind_lite("DECIMAL(10,2)"), Kind::Decimal);
        assert_eq!(kind_lite("DATETIME"), Kind::Timestamp);
    }
}
