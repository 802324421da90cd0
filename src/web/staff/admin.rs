//! Admin rooms: the register and staff management.

use super::*;

// ---------- register (admin) ----------

pub(super) async fn register_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let reg = workflow::register::build(&state)
        .await
        .map_err(fail(&state, locale))?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    let rows: Vec<_> = reg
        .rows
        .iter()
        .rev()
        .take(200)
        .map(|r| {
            serde_json::json!({
                "reference": r.reference,
                "kind": label(locale, "staff.kinds", &r.kind),
                "channel": label(locale, "staff.channels", &r.channel),
                "received": r.received,
                "due": r.due,
                "extended": r.extension_months > 0,
                "closed": r.closed,
                "status": label(locale, "staff.statuses", &r.status),
                "outcome": r.outcome.as_deref().map(|o| label(locale, "staff.outcomes", o)).unwrap_or_default(),
                "timeliness": label(locale, "staff.timeliness", r.timeliness),
                "late": r.timeliness == "late" || r.timeliness == "overdue",
            })
        })
        .collect();
    ctx.insert("rows", &rows);
    let today = chrono::Utc::now()
        .with_timezone(&state.settings.company.country.timezone())
        .date_naive();
    ctx.insert(
        "charts",
        &workflow::register_charts::build(&reg.rows, locale, today),
    );
    ctx.insert("summary", &reg.summary);
    ctx.insert("shown", &rows.len());
    Ok(render(&state, StatusCode::OK, "staff/register.html", &ctx))
}

pub(super) async fn register_csv(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let reg = workflow::register::build(&state)
        .await
        .map_err(fail(&state, locale))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"register-{}.csv\"", today(&state)),
        ))
        .body(reg.csv()))
}

#[derive(serde::Deserialize)]
pub(super) struct RecordQuery {
    #[serde(default)]
    lang: Option<String>,
}

/// The record of processing activities (Art. 30), in any of the three
/// languages whatever the staff member's own (`?lang=`).
pub(super) async fn record_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<RecordQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let doc_locale = q
        .lang
        .as_deref()
        .and_then(crate::domain::Locale::parse)
        .unwrap_or(locale);
    let record = workflow::processing_record::build(&state.settings.company, doc_locale);
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    ctx.insert("record", &record);
    ctx.insert("doc_lang", doc_locale.as_str());
    Ok(render(&state, StatusCode::OK, "staff/record.html", &ctx))
}

pub(super) async fn record_csv(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    q: web::Query<RecordQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let doc_locale = q
        .lang
        .as_deref()
        .and_then(crate::domain::Locale::parse)
        .unwrap_or(locale);
    let record = workflow::processing_record::build(&state.settings.company, doc_locale);
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"register-of-processing-{}-{}.csv\"",
                doc_locale.as_str(),
                today(&state)
            ),
        ))
        .body(workflow::processing_record::csv(&record, doc_locale)))
}

// ---------- staff management (admin) ----------

pub(super) async fn members_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, StatusCode::OK, "staff/members.html", &ctx))
}

pub(super) async fn members_ctx(
    state: &web::Data<AppState>,
    ctx: &mut Context,
    locale: Locale,
) -> Result<(), Fail> {
    let members = staff::list(&state.db)
        .await
        .map_err(|e| Fail::Err(e.into(), locale, state.clone()))?;
    let list: Vec<_> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id, "email": m.email,
                "role": label(locale, "staff.roles", &m.role),
                "enrolled": m.enrolled_at.is_some(),
                "disabled": m.disabled != 0,
            })
        })
        .collect();
    ctx.insert("members", &list);
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn members_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<MemberForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let result = staff_auth::add(&state, &form.email, &form.role, &staff_auth::actor(&me.id)).await;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    let status = match result {
        Ok(link) => {
            ctx.insert("enrol_link", &link);
            StatusCode::OK
        }
        Err(e @ WorkflowError::Invalid { .. }) => {
            ctx.insert("error", &e.message(locale));
            ctx.insert("email", &form.email);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(e) => return Err(Fail::Err(e, locale, state.clone())),
    };
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, status, "staff/members.html", &ctx))
}

/// An admin's action on another member's account. Never on one's own:
/// disabling or resetting it would end the very session doing it, with no
/// way back in.
pub(super) async fn admin_acting_on_other(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: &Session,
    member_id: &str,
    csrf: &str,
) -> Result<(Locale, staff::StaffRow), Fail> {
    let locale = ui_locale(req, session);
    let me = current(state, session).await?;
    require_admin(&me, state, locale)?;
    check_csrf(state, session, locale, csrf)?;
    if member_id == me.id {
        return Err(Fail::Err(WorkflowError::Forbidden, locale, state.clone()));
    }
    Ok((locale, me))
}

#[derive(Deserialize)]
pub(super) struct DisableForm {
    #[serde(default)]
    csrf: String,
    /// `1` on the second step: disabling cannot be undone on these pages.
    #[serde(default)]
    confirm: Option<String>,
}

pub(super) async fn member_disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<DisableForm>,
) -> Page {
    let (locale, me) = admin_acting_on_other(&state, &req, &session, &path, &form.csrf).await?;
    if form.confirm.as_deref() != Some("1") {
        let member = staff::by_id(&state.db, &path)
            .await
            .map_err(|e| Fail::Err(e.into(), locale, state.clone()))?
            .ok_or_else(|| Fail::Err(WorkflowError::NotFound, locale, state.clone()))?;
        let mut ctx = base(&state, &req, &session, locale, Some(&me));
        ctx.insert(
            "confirm_heading",
            &crate::i18n::t_args(
                locale,
                "staff.confirm.disable_heading",
                &[("email", &member.email)],
            ),
        );
        ctx.insert(
            "confirm_lines",
            &[crate::i18n::t_args(
                locale,
                "staff.confirm.disable",
                &[("email", &member.email)],
            )],
        );
        ctx.insert(
            "confirm_action",
            &format!("/staff/members/{}/disable", member.id),
        );
        ctx.insert("confirm_fields", &Vec::<serde_json::Value>::new());
        ctx.insert(
            "confirm_button",
            &crate::i18n::t(locale, "staff.confirm.disable_yes"),
        );
        ctx.insert("back_url", "/staff/members");
        return Ok(render(&state, StatusCode::OK, "staff/confirm.html", &ctx));
    }
    staff_auth::set_disabled(&state, &path, true, &staff_auth::actor(&me.id))
        .await
        .map_err(fail(&state, locale))?;
    Ok(see_other("/staff/members".into()))
}

pub(super) async fn member_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Page {
    let (locale, me) = admin_acting_on_other(&state, &req, &session, &path, &form.csrf).await?;
    let member = staff::by_id(&state.db, &path)
        .await
        .map_err(|e| Fail::Err(e.into(), locale, state.clone()))?
        .ok_or_else(|| Fail::Err(WorkflowError::NotFound, locale, state.clone()))?;
    let link = staff_auth::reset_login(&state, &member.id, &staff_auth::actor(&me.id))
        .await
        .map_err(fail(&state, locale))?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    ctx.insert("enrol_link", &link);
    ctx.insert("reset_email", &member.email);
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, StatusCode::OK, "staff/members.html", &ctx))
}
