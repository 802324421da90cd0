//! The SQL connector's mapping in the company file (CONTRACT.md, "SQL
//! connector"), read and checked without the database: names, links
//! between tables, strategies. What the live schema says is checked in
//! `schema.rs` when the portal connects.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Texts;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The environment variable holding the database URL (never the URL
    /// itself: it carries the password).
    pub url_env: String,
    pub account: Account,
    #[serde(default)]
    pub tables: Vec<Table>,
    #[serde(default)]
    pub blockers: Vec<BlockerSql>,
    #[serde(default)]
    pub consents: Vec<ConsentSql>,
    /// Scheduled anonymisation: who is inactive, and "keep my account".
    #[serde(default)]
    pub inactivity: Option<InactivitySql>,
    /// Retention per data category: the operator's DELETE for rows older
    /// than `:before`.
    #[serde(default)]
    pub retention: Vec<RetentionSql>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InactivitySql {
    /// Rows `account`, `email`, `locale` (may be NULL), `last_activity` of
    /// the accounts with no activity since `:before`.
    pub list: String,
    /// Records activity for `:account` (the "keep my account" click).
    pub touch: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSql {
    /// The data category, as in `privacy_notice.categories[].data`.
    pub category: String,
    /// e.g. `DELETE FROM login_log WHERE logged_at < :before`
    pub sql: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub table: String,
    pub key: String,
    pub email: String,
    /// A table or view with the account key, postcode and house number,
    /// for shops that keep the address apart from the account row.
    #[serde(default)]
    pub knowledge_table: Option<String>,
    pub postcode: String,
    pub house_number: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub table: String,
    /// The primary key; when absent, the live schema's single-column
    /// primary key.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub account_column: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub parent_column: Option<String>,
    #[serde(default)]
    pub referenced_by: Option<RefBy>,
    pub category: String,
    /// `"delete"` or a map column → strategy; absent: nothing personal.
    #[serde(default)]
    pub erase: Option<toml::Value>,
    #[serde(default)]
    pub keep: Option<Keep>,
    /// Columns left out of the export (a password hash, an internal flag).
    #[serde(default)]
    pub skip_export: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefBy {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub reason: Texts,
    pub years: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockerSql {
    pub reason: String,
    pub sql: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSql {
    pub key: String,
    pub read: String,
    pub stop: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Null,
    Mask,
    Hash,
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erase {
    Delete,
    Columns(BTreeMap<String, Strategy>),
    /// Nothing personal: the rows stay as they are (or go with a deleted
    /// parent).
    Nothing,
}

/// How a table's rows are found from the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The account row itself.
    Account,
    /// Rows whose column holds the account key.
    Column(String),
    /// Rows whose column holds a key of the parent table's rows.
    Parent { parent: usize, column: String },
    /// Rows whose key the other table's rows hold in `column`.
    ReferencedBy { from: usize, column: String },
}

/// One mapped table, resolved: indexes instead of names.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub table: String,
    /// Filled from the live schema when the file leaves it out.
    pub key: Option<String>,
    pub link: Link,
    pub category: String,
    pub erase: Erase,
    pub keep: Option<Keep>,
    pub skip_export: Vec<String>,
}

/// Plain SQL identifiers only: the file is trusted to name things, never
/// to smuggle SQL into a statement.
pub fn is_ident(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 64
}

fn is_category(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub fn parse(rest: &toml::Table) -> Result<Mapping, String> {
    toml::Value::Table(rest.clone())
        .try_into::<Mapping>()
        .map_err(|e| e.message().trim().to_string())
}

fn parse_erase(v: &Option<toml::Value>, at: &str, out: &mut Vec<String>) -> Erase {
    match v {
        None => Erase::Nothing,
        Some(toml::Value::String(s)) if s == "delete" => Erase::Delete,
        Some(toml::Value::Table(t)) => {
            let mut cols = BTreeMap::new();
            for (col, s) in t {
                let strategy = match s.as_str() {
                    Some("null") => Strategy::Null,
                    Some("mask") => Strategy::Mask,
                    Some("hash") => Strategy::Hash,
                    Some("keep") => Strategy::Keep,
                    _ => {
                        out.push(format!(
                            "{at}.erase.{col} must be \"null\", \"mask\", \"hash\" or \"keep\""
                        ));
                        continue;
                    }
                };
                if !is_ident(col) {
                    out.push(format!("{at}.erase: `{col}` is not a column name"));
                    continue;
                }
                cols.insert(col.clone(), strategy);
            }
            Erase::Columns(cols)
        }
        Some(_) => {
            out.push(format!(
                "{at}.erase must be \"delete\" or a table of column = strategy"
            ));
            Erase::Nothing
        }
    }
}

/// Checks the mapping and resolves the links between tables. Every
/// problem is named by its place in the file (`connectors[0].tables[2]`).
pub fn resolve(m: &Mapping, at: &str) -> Result<Vec<Resolved>, Vec<String>> {
    let mut out = Vec::new();
    let ident = |what: String, s: &str, out: &mut Vec<String>| {
        if !is_ident(s) {
            out.push(format!(
                "{what} `{s}` is not a plain table or column name (letters, digits, _)"
            ));
        }
    };
    if m.url_env.trim().is_empty() {
        out.push(format!("{at}.url_env is missing"));
    }
    let a = &m.account;
    ident(format!("{at}.account.table"), &a.table, &mut out);
    ident(format!("{at}.account.key"), &a.key, &mut out);
    ident(format!("{at}.account.email"), &a.email, &mut out);
    ident(format!("{at}.account.postcode"), &a.postcode, &mut out);
    ident(
        format!("{at}.account.house_number"),
        &a.house_number,
        &mut out,
    );
    if let Some(k) = &a.knowledge_table {
        ident(format!("{at}.account.knowledge_table"), k, &mut out);
    }

    let index: BTreeMap<&str, usize> = m
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.table.as_str(), i))
        .collect();
    let mut resolved = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in m.tables.iter().enumerate() {
        let at = format!("{at}.tables[{i}]");
        ident(format!("{at}.table"), &t.table, &mut out);
        if !seen.insert(t.table.as_str()) {
            out.push(format!(
                "{at}: table `{}` is mapped twice (one entry per table)",
                t.table
            ));
        }
        if let Some(k) = &t.key {
            ident(format!("{at}.key"), k, &mut out);
        }
        for c in &t.skip_export {
            ident(format!("{at}.skip_export"), c, &mut out);
        }
        if !is_category(&t.category) {
            out.push(format!(
                "{at}.category must be a-z, 0-9, _ or - (at most 64)"
            ));
        }
        let links = [
            t.account_column.is_some(),
            t.parent.is_some() || t.parent_column.is_some(),
            t.referenced_by.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let link = if t.table == a.table && links == 0 {
            Link::Account
        } else if links != 1 {
            out.push(format!(
                "{at}: say how `{}` is reached: account_column, parent + parent_column, or referenced_by (exactly one)",
                t.table
            ));
            Link::Account
        } else if let Some(c) = &t.account_column {
            ident(format!("{at}.account_column"), c, &mut out);
            Link::Column(c.clone())
        } else if let Some(r) = &t.referenced_by {
            ident(format!("{at}.referenced_by.column"), &r.column, &mut out);
            match index.get(r.table.as_str()) {
                Some(&from) => Link::ReferencedBy {
                    from,
                    column: r.column.clone(),
                },
                None => {
                    out.push(format!(
                        "{at}.referenced_by.table `{}` is not a mapped table",
                        r.table
                    ));
                    Link::Account
                }
            }
        } else {
            match (&t.parent, &t.parent_column) {
                (Some(p), Some(c)) => {
                    ident(format!("{at}.parent_column"), c, &mut out);
                    match index.get(p.as_str()) {
                        Some(&parent) if parent != i => Link::Parent {
                            parent,
                            column: c.clone(),
                        },
                        _ => {
                            out.push(format!("{at}.parent `{p}` is not another mapped table"));
                            Link::Account
                        }
                    }
                }
                _ => {
                    out.push(format!("{at}: parent and parent_column go together"));
                    Link::Account
                }
            }
        };
        let erase = parse_erase(&t.erase, &at, &mut out);
        if t.keep.is_some() {
            if erase == Erase::Delete {
                out.push(format!(
                    "{at}: keep and erase = \"delete\" contradict each other"
                ));
            }
            if let Some(k) = &t.keep {
                if let Some(lang) = k.reason.missing() {
                    out.push(format!("{at}.keep.reason.{lang} is missing"));
                }
                if k.years == 0 {
                    out.push(format!("{at}.keep.years must be at least 1"));
                }
            }
            if link == Link::Account {
                out.push(format!(
                    "{at}: the account row cannot be kept; erase its personal columns instead"
                ));
            }
        }
        // The columns that find the rows must survive the erasure, or the
        // next statement in the same transaction would miss them.
        if let Erase::Columns(cols) = &erase {
            let mut finding: Vec<&str> = Vec::new();
            if let Some(k) = &t.key {
                finding.push(k);
            }
            match &link {
                Link::Account => finding.push(&a.key),
                Link::Column(c) => finding.push(c),
                Link::Parent { column, .. } => finding.push(column),
                Link::ReferencedBy { .. } => {}
            }
            for (col, s) in cols {
                if *s != Strategy::Keep && finding.contains(&col.as_str()) {
                    out.push(format!(
                        "{at}.erase.{col}: this column is how the rows are found; it cannot be erased"
                    ));
                }
            }
        }
        resolved.push(Resolved {
            table: t.table.clone(),
            key: t
                .key
                .clone()
                .or_else(|| (t.table == a.table).then(|| a.key.clone())),
            link,
            category: t.category.clone(),
            erase,
            keep: t.keep.clone(),
            skip_export: t.skip_export.clone(),
        });
    }
    if !resolved.iter().any(|r| r.link == Link::Account) {
        out.push(format!(
            "{at}.tables: the account table `{}` needs an entry (how its row is erased)",
            a.table
        ));
    }
    // Links must end at the account: no cycles, and a referenced table is
    // found through a table reached directly (its keys are collected before
    // anything changes).
    for (i, r) in resolved.iter().enumerate() {
        let mut seen = vec![i];
        let mut cur = i;
        loop {
            match &resolved[cur].link {
                Link::Account | Link::Column(_) => break,
                Link::Parent { parent: next, .. } | Link::ReferencedBy { from: next, .. } => {
                    if seen.contains(next) {
                        out.push(format!(
                            "{at}.tables[{i}] (`{}`): its parent links go round in a circle",
                            r.table
                        ));
                        break;
                    }
                    seen.push(*next);
                    cur = *next;
                }
            }
        }
        if let Link::ReferencedBy { from, .. } = r.link {
            if matches!(resolved[from].link, Link::ReferencedBy { .. }) {
                out.push(format!(
                    "{at}.tables[{i}].referenced_by: `{}` is itself referenced; point at a table reached by account or parent",
                    resolved[from].table
                ));
            }
        }
        // A kept child under a deleted parent would lose its parent row.
        if let Link::Parent { parent, .. } = r.link {
            if resolved[parent].erase == Erase::Delete
                && (r.keep.is_some() || matches!(r.erase, Erase::Columns(_)))
            {
                out.push(format!(
                    "{at}.tables[{i}]: `{}` is kept but its parent `{}` is deleted",
                    r.table, resolved[parent].table
                ));
            }
        }
        if matches!(r.link, Link::Column(_))
            && r.erase != Erase::Delete
            && resolved
                .iter()
                .any(|x| x.link == Link::Account && x.erase == Erase::Delete)
        {
            out.push(format!(
                "{at}.tables[{i}]: `{}` stays but the account row it points at is deleted; erase the account row's columns instead",
                r.table
            ));
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    for (i, b) in m.blockers.iter().enumerate() {
        if b.reason.trim().is_empty() {
            out.push(format!("{at}.blockers[{i}].reason is missing"));
        }
        if b.sql.trim().is_empty() {
            out.push(format!("{at}.blockers[{i}].sql is missing"));
        }
    }
    for (i, c) in m.consents.iter().enumerate() {
        if !is_category(&c.key) {
            out.push(format!("{at}.consents[{i}].key must be a-z, 0-9, _ or -"));
        } else if !keys.insert(c.key.as_str()) {
            out.push(format!("{at}.consents[{i}].key `{}` is used twice", c.key));
        }
        if c.read.trim().is_empty() || c.stop.trim().is_empty() {
            out.push(format!("{at}.consents[{i}]: read and stop are both needed"));
        }
    }
    if out.is_empty() {
        Ok(resolved)
    } else {
        Err(out)
    }
}

/// Replaces each `:account` in the operator's SQL by a parameter marker
/// (`$1…` or `?`); returns the SQL and how many markers it holds.
pub fn placeholders(sql: &str, dollar: bool) -> (String, usize) {
    placeholders_named(sql, ":account", dollar)
}

/// As [`placeholders`], for another name (`:before`).
pub fn placeholders_named(sql: &str, name: &str, dollar: bool) -> (String, usize) {
    let p = name;
    let mut out = String::with_capacity(sql.len());
    let mut n = 0;
    let mut rest = sql;
    while let Some(pos) = rest.find(p) {
        let before = rest[..pos].chars().next_back();
        let after = rest[pos + p.len()..].chars().next();
        out.push_str(&rest[..pos]);
        // `::account` is a cast, `:accounts` another word.
        let is_marker =
            before != Some(':') && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_marker {
            n += 1;
            if dollar {
                out.push_str(&format!("${n}"));
            } else {
                out.push('?');
            }
        } else {
            out.push_str(p);
        }
        rest = &rest[pos + p.len()..];
    }
    out.push_str(rest);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_account_placeholder_is_replaced() {
        let (s, n) = placeholders(
            "SELECT x::account FROM t WHERE a = :account OR b = :account AND c = :accounts",
            true,
        );
        assert_eq!(
            s,
            "SELECT x::account FROM t WHERE a = $1 OR b = $2 AND c = :accounts"
        );
        assert_eq!(n, 2);
        let (s, n) = placeholders("WHERE a = :account", false);
        assert_eq!((s.as_str(), n), ("WHERE a = ?", 1));
    }

    fn mapping(tables: &str) -> Result<Vec<Resolved>, Vec<String>> {
        let file = format!(
            r#"
url_env = "SHOP_URL"
[account]
table = "customer"
key = "id"
email = "email"
postcode = "pc"
house_number = "hn"
[[tables]]
table = "customer"
category = "profile"
erase = {{ email = "hash" }}
{tables}"#
        );
        let rest: toml::Table = toml::from_str(&file).unwrap();
        resolve(&parse(&rest).unwrap(), "connectors[0]")
    }

    #[test]
    fn links_resolve_and_mistakes_are_named() {
        let ok = mapping(
            r#"
[[tables]]
table = "orders"
account_column = "customer_id"
category = "orders"
[[tables]]
table = "lines"
parent = "orders"
parent_column = "order_id"
category = "lines"
"#,
        )
        .unwrap();
        assert_eq!(ok[1].link, Link::Column("customer_id".into()));
        assert_eq!(
            ok[2].link,
            Link::Parent {
                parent: 1,
                column: "order_id".into()
            }
        );
        let err = mapping(
            r#"
[[tables]]
table = "orders"
account_column = "customer_id"
parent = "customer"
parent_column = "customer_id"
category = "Orders!"
erase = { customer_id = "null", note = "blank" }
"#,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            err.contains("connectors[0].tables[1]: say how `orders` is reached"),
            "{err}"
        );
        assert!(err.contains("tables[1].category"), "{err}");
        assert!(err.contains("tables[1].erase.note must be"), "{err}");
        let err = mapping(
            r#"
[[tables]]
table = "orders"
account_column = "customer_id"
category = "orders"
erase = { customer_id = "null" }
"#,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            err.contains("erase.customer_id: this column is how the rows are found"),
            "{err}"
        );
        let err = mapping(
            r#"
[[tables]]
table = "orders; DROP TABLE customer"
account_column = "customer_id"
category = "orders"
"#,
        )
        .unwrap_err()
        .join("\n");
        assert!(err.contains("is not a plain table or column name"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let rest: toml::Table = toml::from_str(
            "url_env = \"X\"\n[account]\ntable = \"c\"\nkey = \"id\"\nemail = \"e\"\npostcode = \"p\"\nhouse_number = \"h\"\nmail = \"x\"\n",
        )
        .unwrap();
        let e = parse(&rest).unwrap_err();
        assert!(e.contains("unknown field `mail`"), "{e}");
    }

    #[test]
    fn identifiers_are_plain() {
        assert!(is_ident("customer_id"));
        assert!(!is_ident("customer; DROP TABLE x"));
        assert!(!is_ident("a\"b"));
        assert!(!is_ident("1a"));
    }
}
