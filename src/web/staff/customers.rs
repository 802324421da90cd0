//! The customer card: one person's account and requests, and a start of an
//! erasure or export on their behalf (through the intake, so the customer
//! gets the code mail and the staff member is the actor).

use actix_session::Session;
use actix_web::{http::StatusCode, web, HttpRequest};
use serde::Deserialize;

use super::{
    base, case_row, current, intake_ctx, label, nonempty, render, staff_names, today, ui_locale,
    Fail, Page,
};
use crate::{
    store,
    workflow::{customer_card, staff_auth},
    AppState,
};

#[derive(Deserialize)]
pub(super) struct CardQuery {
    q: Option<String>,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<CardQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    intake_ctx(&state, &mut ctx, locale);
    ctx.insert("received", &today(&state).to_string());
    let Some(term) = nonempty(&query.q) else {
        return Ok(render(&state, StatusCode::OK, "staff/customer.html", &ctx));
    };
    ctx.insert("q", term);
    let err = |e| Fail::Err(e, locale, state.clone());
    let Some(card) = customer_card::find(&state, term).await.map_err(err)? else {
        ctx.insert("not_found", &true);
        return Ok(render(&state, StatusCode::OK, "staff/customer.html", &ctx));
    };
    let (names, _) = staff_names(&state).await.map_err(err)?;
    let now = store::now();
    let requests: Vec<_> = card
        .requests
        .iter()
        .map(|r| case_row(&state, locale, r, &names, now))
        .collect();
    ctx.insert("requests", &requests);
    ctx.insert("card_email", &card.email);
    if let Some(a) = &card.account {
        ctx.insert(
            "account",
            &serde_json::json!({
                "external_id": a.external_id,
                "state": label(locale, "staff.customer.states", if a.erased_at.is_some() { "erased" } else { "active" }),
            }),
        );
    }
    ctx.insert("actor", &staff_auth::actor(&me.id));
    Ok(render(&state, StatusCode::OK, "staff/customer.html", &ctx))
}
