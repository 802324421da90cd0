//! Requests received by phone, letter or email, entered by staff.

use super::*;

// ---------- intake by staff ----------

pub(super) async fn intake_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    intake_ctx(&state, &mut ctx, locale);
    ctx.insert("received", &today(&state).to_string());
    Ok(render(&state, StatusCode::OK, "staff/intake.html", &ctx))
}

pub(super) fn intake_ctx(state: &AppState, ctx: &mut Context, locale: Locale) {
    let _ = state;
    let kinds: Vec<_> = RequestKind::ALL
        .iter()
        .filter(|k| k.available())
        .map(|k| serde_json::json!({"id": k.as_str(), "label": label(locale, "staff.kinds", k.as_str())}))
        .collect();
    ctx.insert("intake_kinds", &kinds);
    let langs: Vec<_> = Locale::ALL
        .iter()
        .map(|l| serde_json::json!({"id": l.as_str(), "label": crate::i18n::t(*l, "lang.name")}))
        .collect();
    ctx.insert("intake_langs", &langs);
    let channels: Vec<_> = ["phone", "letter", "email"]
        .iter()
        .map(|c| serde_json::json!({"id": c, "label": label(locale, "staff.channels", c)}))
        .collect();
    ctx.insert("intake_channels", &channels);
    ctx.insert("sel_kind", "");
    ctx.insert("sel_locale", "");
    ctx.insert("sel_channel", "");
}

#[derive(Deserialize)]
pub(super) struct IntakeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    received: String,
}

pub(super) async fn intake_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<IntakeForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let result = workflow::staff_intake::start(
        &state,
        &workflow::staff_intake::Input {
            kind: &form.kind,
            email: &form.email,
            locale: &form.locale,
            channel: &form.channel,
            received: &form.received,
        },
        &staff_auth::actor(&me.id),
    )
    .await;
    match result {
        Ok(id) => Ok(see_other(format!("/staff/cases/{id}?done=intake"))),
        Err(
            e @ (WorkflowError::Invalid { .. }
            | WorkflowError::KindUnavailable
            | WorkflowError::RateLimited { .. }),
        ) => {
            let mut ctx = base(&state, &req, &session, locale, Some(&me));
            intake_ctx(&state, &mut ctx, locale);
            ctx.insert("error", &e.message(locale));
            ctx.insert("email", &form.email);
            ctx.insert("received", &form.received);
            ctx.insert("sel_kind", &form.kind);
            ctx.insert("sel_locale", &form.locale);
            ctx.insert("sel_channel", &form.channel);
            Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/intake.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}
