//! `[[connectors]]` in the company file (CONTRACT.md, "Connectors"): the
//! company's systems, checked once at start so a typo fails the start
//! instead of an erasure weeks later.

use serde::Deserialize;

use crate::config::Texts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Builtin,
    Http,
    Sql,
    Email,
}

/// No `deny_unknown_fields`: serde does not combine it with `flatten`;
/// `validate` names unknown keys (for `sql`, the mapping's own parser).
#[derive(Debug, Clone, Deserialize)]
pub struct SystemConfig {
    pub id: String,
    pub name: Texts,
    pub kind: Kind,
    #[serde(default)]
    pub primary: bool,
    /// `http`: the base URL; operations are `POST {url}/{operation}`.
    #[serde(default)]
    pub url: Option<String>,
    /// `http`: the environment variable holding the signing secret. The
    /// secret itself never sits in the file (files get committed).
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Objections to these consent keys reach this system.
    #[serde(default)]
    pub consent_keys: Vec<String>,
    /// `email`: where the instruction goes, and in which language.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub language: Option<crate::domain::Locale>,
    /// `email`: the privacy notice recipient this system stands for.
    #[serde(default)]
    pub recipient: Option<String>,
    /// `sql`: everything else belongs to the SQL connector's mapping.
    #[serde(flatten)]
    pub rest: toml::Table,
}

/// What start-up checks: every problem, named by its place in the file.
pub fn validate(systems: &[SystemConfig], recipients: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in systems.iter().enumerate() {
        let at = format!("connectors[{i}]");
        let ok_id = !s.id.is_empty()
            && s.id.len() <= 40
            && s.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok_id {
            out.push(format!("{at}.id must be a-z, 0-9 and - (at most 40)"));
        } else if !seen.insert(s.id.as_str()) {
            out.push(format!("{at}.id `{}` is used twice", s.id));
        }
        if let Some(lang) = s.name.missing() {
            out.push(format!("{at}.name.{lang} is missing"));
        }
        match s.kind {
            Kind::Http => {
                match s.url.as_deref().map(url::Url::parse) {
                    Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => {}
                    Some(_) => out.push(format!("{at}.url is not an http(s) URL")),
                    None => out.push(format!("{at}.url is missing")),
                }
                match s.secret_env.as_deref() {
                    None => out.push(format!("{at}.secret_env is missing")),
                    Some(name) => match std::env::var(name) {
                        Ok(v) if !v.trim().is_empty() => {
                            if super::http::parse_secret(&v).is_err() {
                                out.push(format!(
                                    "{at}: the secret in {name} is not valid (whsec_ + base64, or at least 16 characters)"
                                ));
                            }
                        }
                        _ => out.push(format!("{at}: environment variable {name} is not set")),
                    },
                }
            }
            Kind::Email => {
                if s.primary {
                    out.push(format!("{at}: an email system cannot be primary"));
                }
                match s.to.as_deref().map(crate::domain::Email::parse) {
                    Some(Some(_)) => {}
                    _ => out.push(format!("{at}.to must be an email address")),
                }
                if s.language.is_none() {
                    out.push(format!("{at}.language is missing (nl, sv or en)"));
                }
                if let Some(r) = &s.recipient {
                    if !recipients.iter().any(|x| x == r) {
                        out.push(format!(
                            "{at}.recipient `{r}` is not a recipient of the privacy notice"
                        ));
                    }
                }
            }
            Kind::Sql => {
                if !s.primary {
                    out.push(format!(
                        "{at}: a sql system must be the primary (it owns the login account)"
                    ));
                }
                match super::sql::mapping::parse(&s.rest) {
                    Err(e) => out.push(format!("{at}: {e}")),
                    Ok(m) => {
                        if let Err(p) = super::sql::mapping::resolve(&m, &at) {
                            out.extend(p);
                        }
                        match std::env::var(&m.url_env) {
                            Ok(u) if super::sql::db::Backend::from_url(&u).is_some() => {}
                            Ok(_) => out.push(format!(
                                "{at}: {} is not a postgres://, mysql:// or sqlite:// URL",
                                m.url_env
                            )),
                            Err(_) => out.push(format!(
                                "{at}: environment variable {} is not set",
                                m.url_env
                            )),
                        }
                    }
                }
            }
            Kind::Builtin => {}
        }
        if s.kind != Kind::Sql && !s.rest.is_empty() {
            let keys: Vec<&str> = s.rest.keys().map(String::as_str).collect();
            out.push(format!("{at}: unknown keys {}", keys.join(", ")));
        }
        if s.timeout_seconds == Some(0) {
            out.push(format!("{at}.timeout_seconds must be at least 1"));
        }
    }
    let primaries = systems.iter().filter(|s| s.primary).count();
    if primaries > 1 {
        out.push("connectors: more than one system is primary".into());
    }
    // Without a primary the built-in store stays the primary and the
    // configured systems are secondary (keyed by the customer's email).
    if systems
        .iter()
        .any(|s| s.kind == Kind::Builtin && !s.primary)
        && primaries == 1
    {
        out.push("connectors: the built-in store can only be the primary".into());
    }
    out
}
