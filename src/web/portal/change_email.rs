//! Pages of the email change after the first code: the new address's code,
//! and the choice when that address already has an account.

use actix_session::Session;
use actix_web::{web, HttpRequest};
use serde::Deserialize;
use tera::Context;

use super::{
    base_context, check_csrf, csrf_token, fail, lang, ok, render, rest_of, see_other, verified_ids,
    PageResult,
};
use crate::{
    connector::KnowledgeClaim,
    domain::{Locale, Status},
    store::requests::RequestRow,
    workflow::{change_email, verification, WResult, WorkflowError},
    AppState,
};

/// Picks the template for a change_email request in any state.
pub(super) async fn page(
    state: &AppState,
    ctx: &mut Context,
    row: &RequestRow,
    locale: Locale,
) -> WResult<&'static str> {
    Ok(match row.status() {
        Status::Verified => {
            if change_email::has_account(state, row).await? {
                "portal/change_email.html"
            } else {
                ctx.insert("no_account", &true);
                "portal/status.html"
            }
        }
        Status::AwaitingNewEmail => {
            ctx.insert("minutes", &(crate::workflow::limits::CODE_TTL_SECS / 60));
            "portal/new_code.html"
        }
        Status::Escalated if row.reasons().iter().any(|r| r == "email_in_use") => {
            match change_email::recorded_choice(row) {
                None => {
                    holdings_context(state, ctx, row, locale).await?;
                    "portal/collision.html"
                }
                Some(choice) => {
                    ctx.insert("choice", choice.as_str());
                    "portal/status.html"
                }
            }
        }
        _ => "portal/status.html",
    })
}

/// Under each collision option: what the account it deletes holds.
async fn holdings_context(
    state: &AppState,
    ctx: &mut Context,
    row: &RequestRow,
    locale: Locale,
) -> WResult<()> {
    if let Some((a, b)) = change_email::collision_holdings(state, row).await? {
        let country = state.settings.company.country;
        ctx.insert(
            "a_holds",
            &holds_text(
                locale,
                "change_email.collision.deletes_current",
                &a,
                country,
            ),
        );
        ctx.insert(
            "b_holds",
            &holds_text(locale, "change_email.collision.deletes_other", &b, country),
        );
    }
    Ok(())
}

/// "Wordt verwijderd: je huidige account, met 3 bestellingen, waarvan 1 nog
/// niet geleverd, en nog te betalen: € 12,50."
fn holds_text(
    locale: Locale,
    key: &str,
    h: &change_email::Holdings,
    country: crate::domain::deadline::Country,
) -> String {
    use crate::i18n::{t, t_args, t_count};
    let mut parts = vec![if h.orders == 0 {
        t(locale, "change_email.collision.orders_none")
    } else {
        t_count(
            locale,
            "change_email.collision.orders",
            h.orders as i64,
            &[],
        )
    }];
    if h.open_orders > 0 {
        parts.push(t_count(
            locale,
            "change_email.collision.open_orders",
            h.open_orders as i64,
            &[],
        ));
    }
    if h.balance_cents > 0 {
        let amount = crate::export::readable::money(
            locale,
            h.balance_cents,
            crate::export::readable::home_currency(country),
        );
        parts.push(t_args(
            locale,
            "change_email.collision.balance",
            &[("amount", &amount)],
        ));
    }
    t_args(locale, key, &[("facts", &parts.join(", "))])
}

async fn verified_row(
    state: &web::Data<AppState>,
    session: &Session,
    locale: Locale,
    id: &str,
) -> Result<RequestRow, super::PageError> {
    if !verified_ids(session).iter().any(|v| v == id) {
        return Err(fail(state, locale, WorkflowError::NotVerified));
    }
    verification::get(state, id)
        .await
        .map_err(|e| fail(state, locale, e))
}

/// The request whose new address's code is entered here. The mail to the
/// new address links to this page, and mail apps open their own browser:
/// while the request waits for that code, entering it is the proof, as on
/// the first code page, so no earlier session is needed.
async fn awaiting_new_code(
    state: &web::Data<AppState>,
    session: &Session,
    locale: Locale,
    id: &str,
) -> Result<RequestRow, super::PageError> {
    let row = verification::get(state, id)
        .await
        .map_err(|e| fail(state, locale, e))?;
    if row.status() == Status::AwaitingNewEmail || verified_ids(session).iter().any(|v| v == id) {
        Ok(row)
    } else {
        Err(fail(state, locale, WorkflowError::NotVerified))
    }
}

pub(super) async fn new_code_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let row = awaiting_new_code(&state, &session, locale, &id).await?;
    if row.status() != Status::AwaitingNewEmail || verified_ids(&session).contains(&id) {
        return Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)));
    }
    let ctx = code_again(&state, &req, &session, locale, &row);
    Ok(ok(&state, "portal/new_code.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

fn code_again(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    row: &RequestRow,
) -> Context {
    let csrf = csrf_token(session);
    let mut ctx = base_context(state, locale, &rest_of(req), Some(&csrf));
    ctx.insert("id", &row.id);
    ctx.insert("kind", &row.kind);
    ctx.insert("minutes", &(crate::workflow::limits::CODE_TTL_SECS / 60));
    ctx
}

pub(super) async fn new_code_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let row = awaiting_new_code(&state, &session, locale, &id).await?;
    match change_email::verify_new_email(&state, &id, &form.code).await {
        Ok(_) => {
            super::remember_verified(&session, &id);
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(WorkflowError::WrongState { .. }) => {
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(
            e @ (WorkflowError::InvalidCode { .. }
            | WorkflowError::CodeExpired
            | WorkflowError::TooManyAttempts { .. }),
        ) => {
            let mut ctx = code_again(&state, &req, &session, locale, &row);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/new_code.html",
                &ctx,
            ))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn new_resend_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let row = awaiting_new_code(&state, &session, locale, &id).await?;
    let mut ctx = code_again(&state, &req, &session, locale, &row);
    match change_email::resend_new_code(&state, &id).await {
        Ok(()) => ctx.insert("notice", &crate::i18n::t(locale, "code.resent")),
        Err(e @ (WorkflowError::RateLimited { .. } | WorkflowError::ResendTooSoon { .. })) => {
            ctx.insert("error", &e.message(locale))
        }
        Err(WorkflowError::WrongState { .. }) => {
            return Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(e) => return Err(fail(&state, locale, e)),
    }
    Ok(ok(&state, "portal/new_code.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct ChoiceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    option: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    house_number: String,
}

pub(super) async fn choice_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<ChoiceForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let row = verified_row(&state, &session, locale, &id).await?;
    let form = form.into_inner();
    let result = match change_email::Choice::parse(&form.option) {
        None => Err(WorkflowError::Invalid {
            field: "option",
            key: "errors.choice_missing",
        }),
        Some(choice) => {
            let claim = KnowledgeClaim {
                postcode: &form.postcode,
                house_number: &form.house_number,
            };
            change_email::choose(&state, &id, choice, &claim)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) | Err(WorkflowError::DetailsLocked) => {}
        Err(e @ (WorkflowError::Invalid { .. } | WorkflowError::DetailsMismatch { .. })) => {
            // The stated details are not echoed back: pages never show them.
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("id", &row.id);
            ctx.insert("kind", &row.kind);
            ctx.insert("error", &e.message(locale));
            if let WorkflowError::Invalid { field, .. } = &e {
                ctx.insert("error_field", field);
            }
            if let Some(c) = change_email::Choice::parse(&form.option) {
                ctx.insert("chosen", c.as_str());
            }
            holdings_context(&state, &mut ctx, &row, locale)
                .await
                .map_err(|e| fail(&state, locale, e))?;
            return Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/collision.html",
                &ctx,
            ));
        }
        Err(e) => return Err(fail(&state, locale, e)),
    }
    Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
}
