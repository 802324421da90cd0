//! The company's systems as configured: one primary that owns the login
//! account, and the secondary systems that hold data keyed by the
//! customer's email (a newsletter tool, a CRM) or are told by mail.

use std::{sync::Arc, time::Duration};

use super::{
    builtin::BuiltinStore,
    config::{Kind, SystemConfig},
    http::HttpSystem,
    sql::SqlSystem,
    Connector,
};
use crate::{config::Texts, domain::Locale, store::Db};

/// The id under which the built-in store appears on cases and in archives.
pub const BUILTIN_ID: &str = "builtin";

pub struct Systems {
    pub primary: Arc<dyn Connector>,
    pub primary_id: String,
    pub primary_name: Texts,
    /// Set when the primary is the company's HTTP API (for `ping`).
    pub primary_http: Option<Arc<HttpSystem>>,
    /// Set when the primary is the company's own database.
    pub primary_sql: Option<Arc<SqlSystem>>,
    pub secondaries: Vec<Secondary>,
}

pub struct Secondary {
    pub id: String,
    pub name: Texts,
    /// Objections to these keys reach this system; empty: none.
    pub consent_keys: Vec<String>,
    pub kind: SecondaryKind,
}

pub enum SecondaryKind {
    Http(Arc<HttpSystem>),
    /// Told by mail (Art. 19, Art. 28(3)(e)).
    Email {
        to: String,
        language: Locale,
        recipient: Option<String>,
    },
}

impl Systems {
    /// Connects to a `sql` primary and checks its mapping against the live
    /// schema, so a wrong name stops the start instead of an erasure.
    pub async fn build(
        configs: &[SystemConfig],
        db: &Db,
        tz: chrono_tz::Tz,
        keys: &crate::crypto::Keys,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Systems> {
        let builtin_name = Texts {
            nl: crate::i18n::t(Locale::Nl, "connector.builtin"),
            sv: crate::i18n::t(Locale::Sv, "connector.builtin"),
            en: crate::i18n::t(Locale::En, "connector.builtin"),
        };
        let mut systems = Systems {
            primary: Arc::new(BuiltinStore::new(db.clone(), tz)),
            primary_id: BUILTIN_ID.into(),
            primary_name: builtin_name,
            primary_http: None,
            primary_sql: None,
            secondaries: Vec::new(),
        };
        for c in configs {
            let http = || -> anyhow::Result<Arc<HttpSystem>> {
                let env = c.secret_env.as_deref().unwrap_or_default();
                let raw = std::env::var(env)
                    .map_err(|_| anyhow::anyhow!("connector {}: {env} is not set", c.id))?;
                let secret = super::http::parse_secret(&raw)
                    .map_err(|e| anyhow::anyhow!("connector {}: {e}", c.id))?;
                Ok(Arc::new(
                    HttpSystem::new(
                        &c.id,
                        c.url.as_deref().unwrap_or_default(),
                        secret,
                        Duration::from_secs(c.timeout_seconds.unwrap_or(10)),
                        tz,
                    )?
                    .with_metrics(metrics.clone()),
                ))
            };
            match (c.kind, c.primary) {
                (Kind::Builtin, _) => {
                    systems.primary_id = c.id.clone();
                    systems.primary_name = c.name.clone();
                }
                (Kind::Http, true) => {
                    let h = http()?;
                    systems.primary = h.clone();
                    systems.primary_http = Some(h);
                    systems.primary_id = c.id.clone();
                    systems.primary_name = c.name.clone();
                }
                (Kind::Http, false) => systems.secondaries.push(Secondary {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    consent_keys: c.consent_keys.clone(),
                    kind: SecondaryKind::Http(http()?),
                }),
                (Kind::Email, _) => systems.secondaries.push(Secondary {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    consent_keys: c.consent_keys.clone(),
                    kind: SecondaryKind::Email {
                        to: c.to.clone().unwrap_or_default(),
                        language: c.language.unwrap_or(Locale::En),
                        recipient: c.recipient.clone(),
                    },
                }),
                (Kind::Sql, true) => {
                    let s = Arc::new(
                        SqlSystem::connect(&c.id, &c.rest, keys.sql_hash_key(), tz).await?,
                    );
                    systems.primary = s.clone();
                    systems.primary_sql = Some(s);
                    systems.primary_id = c.id.clone();
                    systems.primary_name = c.name.clone();
                }
                (Kind::Sql, false) => {
                    anyhow::bail!("connector {}: a sql system must be the primary", c.id)
                }
            }
        }
        Ok(systems)
    }

    pub fn is_builtin_primary(&self) -> bool {
        self.primary_http.is_none() && self.primary_sql.is_none()
    }

    pub fn secondary(&self, id: &str) -> Option<&Secondary> {
        self.secondaries.iter().find(|s| s.id == id)
    }

    /// The display name of a system on a case, in the reader's language.
    pub fn name(&self, id: &str, locale: Locale) -> String {
        if id == self.primary_id {
            return self.primary_name.get(locale).to_string();
        }
        self.secondary(id)
            .map(|s| s.name.get(locale).to_string())
            .unwrap_or_else(|| id.to_string())
    }
}
