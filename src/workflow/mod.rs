//! What happens after each step of a request. The HTML portal and the JSON
//! API call these same functions; handlers only parse and render.

pub mod anonymise;
pub mod authenticator;
pub mod cases;
pub mod change_email;
pub mod connectors;
pub mod customer_card;
pub mod delete;
pub mod digest;
pub mod export;
pub mod intake;
pub mod notice;
pub mod object;
pub mod processing_record;
pub mod question;
pub mod register;
pub mod register_charts;
pub mod retention;
pub mod staff_auth;
pub mod staff_intake;
pub mod steps;
pub mod sweep;
pub mod verification;
pub mod webhooks;

use crate::{domain::Locale, store::requests::TransitionError};

/// Limits of the identity check (DESIGN.md, security model).
pub mod limits {
    pub const CODE_DIGITS: u32 = 6;
    pub const CODE_TTL_SECS: i64 = 15 * 60;
    pub const ATTEMPTS_PER_CODE: i64 = 5;
    /// Across all requests of one address: stops guessing by opening many requests.
    pub const FAILURES_PER_ADDRESS_HOUR: i64 = 10;
    pub const CODES_PER_ADDRESS_HOUR: i64 = 5;
    pub const RESEND_COOLDOWN_SECS: i64 = 30;
    pub const UNVERIFIED_EXPIRY_SECS: i64 = 24 * 3600;
    pub const QUESTION_MAX_CHARS: usize = 5000;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("invalid input in {field}")]
    Invalid {
        field: &'static str,
        key: &'static str,
    },
    #[error("this kind of request is not available yet")]
    KindUnavailable,
    #[error("not found")]
    NotFound,
    #[error("wrong code")]
    InvalidCode { attempts_left: i64 },
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Option<u64> },
    #[error("code expired")]
    CodeExpired,
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// A new code was asked for within the resend cooldown: the customer
    /// is told the seconds to wait, not "too many attempts".
    #[error("a new code was sent moments ago")]
    ResendTooSoon { retry_after: u64 },
    #[error("identity not verified")]
    NotVerified,
    #[error("no account for this address")]
    NoAccount,
    #[error("request is {status}; that step is not possible now")]
    WrongState { status: &'static str },
    #[error("unauthorized")]
    Unauthorized,
    /// Signed in, but the role does not allow this (staff: agent vs admin).
    #[error("forbidden")]
    Forbidden,
    #[error("postcode and house number do not match")]
    DetailsMismatch { attempts_left: i64 },
    /// Too many wrong details: the request is closed.
    #[error("too many wrong details")]
    DetailsLocked,
    /// The lost-mailbox check failed; which detail is never said.
    #[error("these details do not match")]
    FallbackMismatch,
    #[error("the download has expired")]
    DownloadExpired,
    /// The archive is still being built (never "expired").
    #[error("the archive is still being prepared")]
    ExportProcessing { retry_after: u64 },
    #[error("deletion is still blocked")]
    StillBlocked { reasons: Vec<String> },
    /// A form without the session's CSRF token.
    #[error("form token missing or wrong")]
    Csrf,
    /// The database refuses connections, or a write cannot commit (disk
    /// full): nothing was stored, and trying again later will work.
    #[error("storage unavailable")]
    Unavailable,
    /// A company system (connector) could not answer while the customer
    /// waited: nothing changed, and trying again later will work.
    #[error("a company system is unavailable")]
    SystemUnavailable,
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// How long a customer is asked to wait when the database is away.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 60;

impl WorkflowError {
    /// Sorts a failure of the database into "away for now" (a 503 with
    /// Retry-After) and everything else (a 500 worth a look). Logged here,
    /// as the cause is gone once it is an `Unavailable`; sqlx messages name
    /// tables and constraints, never values.
    pub fn from_storage(e: anyhow::Error) -> WorkflowError {
        if let Some(c) = e.downcast_ref::<crate::connector::http::CallError>() {
            // Only the kind: a refusal's text is the company's, and may quote data.
            tracing::warn!(
                kind = c.kind(),
                "company system did not answer a customer flow"
            );
            return WorkflowError::SystemUnavailable;
        }
        if crate::store::is_unavailable(e.as_ref()) {
            tracing::warn!(error = %e, "database unavailable");
            WorkflowError::Unavailable
        } else {
            WorkflowError::Internal(e)
        }
    }
}

impl From<anyhow::Error> for WorkflowError {
    fn from(e: anyhow::Error) -> Self {
        WorkflowError::from_storage(e)
    }
}

impl From<sqlx::Error> for WorkflowError {
    fn from(e: sqlx::Error) -> Self {
        WorkflowError::from_storage(e.into())
    }
}

impl From<TransitionError> for WorkflowError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Illegal(i) => WorkflowError::WrongState { status: i.from },
            TransitionError::Raced => WorkflowError::WrongState { status: "changed" },
            TransitionError::Db(d) => d.into(),
        }
    }
}

impl WorkflowError {
    /// Stable machine code (CONTRACT.md) and HTTP status.
    pub fn code(&self) -> (&'static str, u16) {
        match self {
            WorkflowError::Invalid { .. } => ("invalid_input", 422),
            WorkflowError::KindUnavailable => ("kind_unavailable", 422),
            WorkflowError::NotFound => ("not_found", 404),
            WorkflowError::InvalidCode { .. } => ("invalid_code", 422),
            WorkflowError::TooManyAttempts { .. } => ("too_many_attempts", 429),
            WorkflowError::CodeExpired => ("code_expired", 410),
            WorkflowError::RateLimited { .. } | WorkflowError::ResendTooSoon { .. } => {
                ("rate_limited", 429)
            }
            WorkflowError::NotVerified => ("not_verified", 403),
            WorkflowError::NoAccount => ("no_account", 422),
            WorkflowError::WrongState { .. } => ("wrong_state", 409),
            WorkflowError::Unauthorized => ("unauthorized", 401),
            WorkflowError::Forbidden => ("forbidden", 403),
            WorkflowError::Csrf => ("csrf", 403),
            WorkflowError::DetailsMismatch { .. } => ("details_mismatch", 422),
            WorkflowError::DetailsLocked => ("too_many_attempts", 429),
            WorkflowError::StillBlocked { .. } => ("still_blocked", 409),
            WorkflowError::DownloadExpired => ("download_expired", 410),
            WorkflowError::ExportProcessing { .. } => ("export_processing", 409),
            WorkflowError::FallbackMismatch => ("details_mismatch", 422),
            WorkflowError::Unavailable => ("unavailable", 503),
            WorkflowError::SystemUnavailable => ("system_unavailable", 503),
            WorkflowError::Internal(_) => ("internal", 500),
        }
    }

    /// The customer-facing explanation, in their language.
    pub fn message(&self, locale: Locale) -> String {
        use crate::i18n::{t, t_count};
        match self {
            WorkflowError::Invalid { key, .. } => t(locale, key),
            WorkflowError::InvalidCode { attempts_left } => {
                t_count(locale, "errors.invalid_code", *attempts_left, &[])
            }
            WorkflowError::RateLimited { retry_after }
            | WorkflowError::TooManyAttempts {
                retry_after: Some(retry_after),
            } => {
                let minutes = i64::try_from(retry_after.div_ceil(60).max(1)).unwrap_or(i64::MAX);
                let key = if matches!(self, WorkflowError::RateLimited { .. }) {
                    "errors.rate_limited"
                } else {
                    "errors.too_many_attempts"
                };
                t_count(locale, key, minutes, &[])
            }
            WorkflowError::ResendTooSoon { retry_after } => t_count(
                locale,
                "errors.resend_wait",
                i64::try_from((*retry_after).max(1)).unwrap_or(i64::MAX),
                &[],
            ),
            WorkflowError::TooManyAttempts { retry_after: None } => t(locale, "errors.code_burnt"),
            WorkflowError::FallbackMismatch => t(locale, "errors.fallback_mismatch"),
            WorkflowError::DetailsMismatch { attempts_left } => {
                t_count(locale, "errors.details_mismatch", *attempts_left, &[])
            }
            WorkflowError::DetailsLocked => t(locale, "errors.details_locked"),
            other => t(locale, &format!("errors.{}", other.code().0)),
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            WorkflowError::RateLimited { retry_after }
            | WorkflowError::ResendTooSoon { retry_after } => Some(*retry_after),
            WorkflowError::TooManyAttempts { retry_after } => Some(retry_after.unwrap_or(0)),
            WorkflowError::ExportProcessing { retry_after } => Some(*retry_after),
            WorkflowError::Unavailable | WorkflowError::SystemUnavailable => {
                Some(UNAVAILABLE_RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }
}

pub type WResult<T> = Result<T, WorkflowError>;

/// An audit event about one request.
pub(crate) fn event<'a>(
    id: &'a str,
    actor: &'a str,
    action: &'a str,
    from: Option<crate::domain::Status>,
    to: Option<crate::domain::Status>,
    detail: serde_json::Value,
) -> crate::store::audit::Event<'a> {
    crate::store::audit::Event {
        request_id: Some(id),
        actor,
        action,
        from_status: from.map(crate::domain::Status::as_str),
        to_status: to.map(crate::domain::Status::as_str),
        detail,
    }
}

/// The company's other systems as a staff task with the request's deadline
/// (Art. 15: add their data to an export; Art. 19: erase there too).
pub(crate) async fn other_systems_task(
    state: &crate::AppState,
    conn: &mut crate::store::Conn,
    id: &str,
    kind: &str,
    due_at: i64,
    now: i64,
) -> WResult<()> {
    let systems = &state.settings.company.other_systems;
    let mut checklist: Vec<crate::store::tasks::ChecklistItem> = systems
        .iter()
        .map(|s| crate::store::tasks::ChecklistItem {
            id: s.id.clone(),
            name: s.name.clone(),
            done: false,
        })
        .collect();
    // A processor told by mail (`kind = "email"`) has had its instruction;
    // staff tick it off when the processor confirms it acted.
    if kind.starts_with("erasure") {
        for s in &state.systems.secondaries {
            if let crate::connector::SecondaryKind::Email { .. } = s.kind {
                checklist.push(crate::store::tasks::ChecklistItem {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    done: false,
                });
            }
        }
    }
    if checklist.is_empty() {
        return Ok(());
    }
    crate::store::tasks::insert(conn, id, kind, &checklist, due_at, now).await?;
    crate::store::audit::record(
        conn,
        state.keys.audit(),
        now,
        event(
            id,
            "system",
            "task_created",
            None,
            None,
            serde_json::json!({"task": kind, "items": checklist.len()}),
        ),
    )
    .await?;
    Ok(())
}

/// A staff member's reason for setting a rule aside, kept as a case note
/// (purged with the request) so the permanent audit trail holds only a
/// pointer to it, never the free text.
pub(crate) async fn reason_note(
    conn: &mut crate::store::Conn,
    id: &str,
    actor: &str,
    reason: Option<&str>,
    now: i64,
) -> WResult<Option<String>> {
    match reason {
        Some(r) => Ok(Some(
            crate::store::cases::add_note(conn, id, actor, "override_reason", r, now).await?,
        )),
        None => Ok(None),
    }
}

/// Short reference shown to customers and staff ("R-1A2B3C4D"): the last
/// eight hex digits of the id. Ids start with their creation time (v7, see
/// `store::new_id`), so the first eight would be shared by every request of
/// the same minute; the last eight are random.
/// What the customer set out to do, as words that fit "Someone wants to …":
/// "bij Kaasboer B.V. een kopie van je gegevens opvragen".
pub fn kind_action(
    state: &crate::app::AppState,
    locale: Locale,
    kind: crate::domain::RequestKind,
) -> String {
    crate::i18n::t_args(
        locale,
        &format!("kinds.{}.action", kind.as_str()),
        &[("company", &state.settings.company.name)],
    )
}

pub fn reference(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    format!("R-{}", hex[hex.len().saturating_sub(8)..].to_uppercase())
}

/// The id suffix a reference stands for: "R-1A2B3C4D", "r1a2b3c4d" or
/// "1a2b3c4d" → "1a2b3c4d" (what `store::cases::by_reference` compares).
pub fn reference_key(term: &str) -> Option<String> {
    let key = term
        .trim()
        .trim_start_matches(['R', 'r'])
        .trim_start_matches('-')
        .to_lowercase();
    (key.len() == 8 && key.chars().all(|c| c.is_ascii_hexdigit())).then_some(key)
}

/// A change of address from the lost-mailbox form that the authenticator did
/// not prove: started at the new address, carried out by staff.
pub(crate) fn is_lost_mailbox(req: &crate::store::requests::RequestRow) -> bool {
    req.kind() == crate::domain::RequestKind::ChangeEmail
        && req.data().get("lost_mailbox").and_then(|v| v.as_bool()) == Some(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_of_requests_made_together_differ() {
        let ids: Vec<String> = (0..1000).map(|_| crate::store::new_id()).collect();
        let refs: std::collections::HashSet<String> =
            ids.iter().map(|id| super::reference(id)).collect();
        assert_eq!(refs.len(), ids.len());
        let id = "0193a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b";
        assert_eq!(super::reference(id), "R-3E4F5A6B");
        assert_eq!(&id[28..], "3e4f5a6b", "what by_reference compares");
        assert_eq!(
            super::reference_key(" R-3E4F5A6B ").as_deref(),
            Some("3e4f5a6b")
        );
        assert_eq!(
            super::reference_key("3e4f5a6b").as_deref(),
            Some("3e4f5a6b")
        );
        assert_eq!(super::reference_key("R-3E4F5A6"), None);
    }

    /// Every error a customer or an API client can meet reads as text in
    /// each language, never as a raw locale key.
    #[test]
    fn every_error_has_a_message_and_a_problem_title() {
        use super::WorkflowError as E;
        use crate::{domain::Locale, i18n};
        let all = [
            E::Invalid {
                field: "email",
                key: "errors.invalid_email",
            },
            E::KindUnavailable,
            E::NotFound,
            E::InvalidCode { attempts_left: 2 },
            E::TooManyAttempts {
                retry_after: Some(60),
            },
            E::TooManyAttempts { retry_after: None },
            E::CodeExpired,
            E::RateLimited { retry_after: 30 },
            E::NotVerified,
            E::NoAccount,
            E::WrongState {
                status: "completed",
            },
            E::Unauthorized,
            E::Forbidden,
            E::DetailsMismatch { attempts_left: 1 },
            E::DetailsLocked,
            E::FallbackMismatch,
            E::DownloadExpired,
            E::ExportProcessing { retry_after: 5 },
            E::StillBlocked {
                reasons: vec!["open_order".into()],
            },
            E::Csrf,
            E::Unavailable,
            E::Internal(anyhow::anyhow!("x")),
        ];
        for locale in [Locale::Nl, Locale::Sv, Locale::En] {
            for e in &all {
                let message = e.message(locale);
                assert!(
                    !message.contains("errors.") && !message.contains("%{"),
                    "{e:?} in {locale:?}: {message}"
                );
                let title = format!("problems.{}", e.code().0);
                assert!(i18n::has_key(locale, &title), "{title} in {locale:?}");
            }
        }
    }
}
