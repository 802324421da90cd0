//! Staff login with password + TOTP, logout, and first-time enrolment.

use super::*;

// ---------- login, logout, enrolment ----------

pub(super) async fn login_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Page {
    let locale = ui_locale(&req, &session);
    if current(&state, &session).await.is_ok() {
        return Ok(see_other("/staff/".into()));
    }
    let ctx = base(&state, &req, &session, locale, None);
    Ok(render(&state, StatusCode::OK, "staff/login.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

pub(super) async fn login_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<LoginForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    let form = form.into_inner();
    match staff_auth::login(
        &state,
        &form.email,
        SecretString::from(form.password),
        &form.code,
    )
    .await
    {
        Ok(member) => {
            let lang = session.get::<String>("staff_lang").ok().flatten();
            // A fresh session id at login (session fixation).
            session.renew();
            let now = store::now();
            let _ = session.insert(SK_ID, &member.id);
            let _ = session.insert(SK_ISSUED, now);
            let _ = session.insert(SK_SEEN, now);
            let _ = session.insert(SK_GEN, member.session_gen);
            let _ = session.insert("csrf", crate::crypto::random_token());
            if let Some(l) = lang {
                let _ = session.insert("staff_lang", l);
            }
            Ok(see_other("/staff/".into()))
        }
        Err(WorkflowError::Unauthorized) => {
            let mut ctx = base(&state, &req, &session, locale, None);
            ctx.insert("email", &form.email);
            ctx.insert("error", &crate::i18n::t(locale, "staff.login.failed"));
            Ok(render(
                &state,
                StatusCode::UNAUTHORIZED,
                "staff/login.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    pub(super) csrf: String,
}

pub(super) async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<CsrfOnly>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    // Only a live session may end the member's sessions: a stale cookie
    // (already logged out) is simply cleared.
    if let Ok(me) = current(&state, &session).await {
        staff_auth::logout(&state, &me.id)
            .await
            .map_err(fail(&state, locale))?;
    }
    let lang = session.get::<String>("staff_lang").ok().flatten();
    session.purge();
    if let Some(l) = lang {
        let _ = session.insert("staff_lang", l);
    }
    Ok(see_other("/staff/login".into()))
}

pub(super) async fn enrol_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let token = path.into_inner();
    let mut ctx = base(&state, &req, &session, locale, None);
    match staff_auth::enrol_start(&state, &token).await {
        Ok(p) => {
            enrol_ctx(&mut ctx, &p, &token);
            Ok(render(&state, StatusCode::OK, "staff/enrol.html", &ctx))
        }
        Err(WorkflowError::Invalid { key, .. }) => {
            ctx.insert("error", &crate::i18n::t(locale, key));
            Ok(render(
                &state,
                StatusCode::GONE,
                "staff/enrol_invalid.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

pub(super) fn enrol_ctx(ctx: &mut Context, p: &staff_auth::EnrolPage, token: &str) {
    ctx.insert("token", token);
    ctx.insert("staff_email", &p.email);
    ctx.insert("secret", &p.secret_b32);
    ctx.insert("otpauth_url", &p.otpauth_url);
    ctx.insert("qr", &p.qr_data_uri);
    ctx.insert("min_chars", &staff_auth::MIN_PASSWORD_CHARS);
}

#[derive(Deserialize)]
pub(super) struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    code: String,
}

pub(super) async fn enrol_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<EnrolForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    let token = path.into_inner();
    let form = form.into_inner();
    let result = staff_auth::enrol_finish(
        &state,
        &token,
        SecretString::from(form.password),
        SecretString::from(form.password_again),
        &form.code,
    )
    .await;
    let mut ctx = base(&state, &req, &session, locale, None);
    match result {
        Ok(codes) => {
            ctx.insert("recovery_codes", &codes);
            Ok(render(&state, StatusCode::OK, "staff/enrolled.html", &ctx))
        }
        Err(WorkflowError::Invalid { key, field }) if field != "token" => {
            let p = staff_auth::enrol_start(&state, &token)
                .await
                .map_err(fail(&state, locale))?;
            enrol_ctx(&mut ctx, &p, &token);
            ctx.insert("error", &crate::i18n::t(locale, key));
            ctx.insert("error_field", field);
            Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/enrol.html",
                &ctx,
            ))
        }
        Err(WorkflowError::Invalid { key, .. }) => {
            ctx.insert("error", &crate::i18n::t(locale, key));
            Ok(render(
                &state,
                StatusCode::GONE,
                "staff/enrol_invalid.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}
