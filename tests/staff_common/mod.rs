//! Helpers for the staff workspace tests: enrol a staff member through the
//! real enrolment page, compute TOTP codes from the secret it shows, log in.
#![allow(dead_code)]

use privacy_portal::workflow::staff_auth;
use totp_rs::{Builder, Secret};

use crate::common::{client, location, page, TestApp};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct StaffUser {
    pub email: String,
    pub secret: String,
    pub recovery: Vec<String>,
    pub client: reqwest::Client,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code the authenticator app shows `offset_steps` × 30 s from now.
pub fn totp_code(secret: &str, offset_steps: i64) -> String {
    let t = Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build_noncompliant();
    let at = (now() as i64 + offset_steps * 30) as u64;
    t.generate(at).to_string()
}

/// Waits until at least 5 s of the current 30-s time step remain, so a code
/// computed now is still in the step the server expects when it checks it
/// (on a loaded machine a request can take a few seconds).
pub async fn settle_step() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 30_000;
    if ms > 25_000 {
        tokio::time::sleep(std::time::Duration::from_millis(30_100 - ms as u64)).await;
    }
}

pub fn extract(re: &str, body: &str) -> Option<String> {
    regex::Regex::new(re)
        .unwrap()
        .captures(body)
        .map(|c| c[1].to_string())
}

/// Creates the member (as `staff add` does) and completes enrolment in the
/// browser-like client. Enrolment uses the previous time step, so the
/// current and the next step remain for logins.
pub async fn enrol(app: &TestApp, email: &str, role: &str) -> StaffUser {
    let link = staff_auth::add(app.state(), email, role, "cli")
        .await
        .unwrap();
    enrol_with_link(app, email, link.strip_prefix(&app.base).unwrap()).await
}

/// Follows an enrolment link (path only): password, authenticator, recovery codes.
pub async fn enrol_with_link(app: &TestApp, email: &str, path: &str) -> StaffUser {
    let c = client();
    let (status, body, csrf) = page(&c, &app.url(path)).await;
    assert_eq!(status, 200, "{body}");
    let secret =
        extract(r#"<code id="totp-secret">([A-Z2-7=]+)</code>"#, &body).expect("secret shown");
    assert!(body.contains("data:image/svg+xml;base64,"), "QR code shown");
    settle_step().await;
    let res = c
        .post(app.url(path))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("password", PASSWORD.to_string()),
            ("password_again", PASSWORD.to_string()),
            ("code", totp_code(&secret, -1)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let recovery: Vec<String> =
        regex::Regex::new(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5}-[0-9a-f]{5})</code></li>")
            .unwrap()
            .captures_iter(&body)
            .map(|c| c[1].to_string())
            .collect();
    assert_eq!(recovery.len(), 10, "{body}");
    StaffUser {
        email: email.to_string(),
        secret,
        recovery,
        client: client(),
    }
}

/// Posts the login form; returns the response.
pub async fn try_login(
    app: &TestApp,
    c: &reqwest::Client,
    email: &str,
    password: &str,
    code: &str,
) -> reqwest::Response {
    let (_, _, csrf) = page(c, &app.url("/staff/login")).await;
    c.post(app.url("/staff/login"))
        .form(&[
            ("csrf", csrf.expect("login form has a CSRF token")),
            ("email", email.to_string()),
            ("password", password.to_string()),
            ("code", code.to_string()),
        ])
        .send()
        .await
        .unwrap()
}

/// Logs in with the code of the given time step offset (0 = now, 1 = next).
pub async fn login(app: &TestApp, user: &StaffUser, offset_steps: i64) {
    settle_step().await;
    let res = try_login(
        app,
        &user.client,
        &user.email,
        PASSWORD,
        &totp_code(&user.secret, offset_steps),
    )
    .await;
    assert_eq!(res.status(), 303, "login should succeed");
    assert_eq!(location(&res), "/staff/");
}

/// Posts a staff form with the CSRF token of `form_page`.
pub async fn post_form(
    app: &TestApp,
    c: &reqwest::Client,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (status, body, csrf) = page(c, &app.url(form_page)).await;
    assert_eq!(status, 200, "{body}");
    let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf.expect("csrf"))];
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    c.post(app.url(action)).form(&form).send().await.unwrap()
}
