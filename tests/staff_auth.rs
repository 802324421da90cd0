//! Staff accounts: enrolment with password + TOTP, login, lock-out,
//! sessions, roles.

mod common;
mod staff_common;

use common::{client, location, page, TestApp};
use privacy_portal::workflow::staff_auth;
use staff_common::{enrol, enrol_with_link, login, totp_code, try_login, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_then_login_with_a_computed_totp_code() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;

    // Stored: an argon2id hash and a sealed secret, never the clear values.
    let phc: String = sqlx::query_scalar("SELECT password_hash FROM staff WHERE email = $1")
        .bind(&user.email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let sealed: String = sqlx::query_scalar("SELECT totp_secret FROM staff WHERE email = $1")
        .bind(&user.email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert!(!sealed.contains(&user.secret));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM staff_recovery_codes r JOIN staff s ON s.id = r.staff_id WHERE s.email = $1", &user.email).await,
        10
    );

    // The enrolment link is single use.
    let link_used = app
        .scalar(
            "SELECT COUNT(*) FROM staff WHERE email = $1 AND enrol_token_hash IS NULL",
            &user.email,
        )
        .await;
    assert_eq!(link_used, 1);

    // Not logged in: the queue sends you to the login page.
    let res = user.client.get(app.url("/staff/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/staff/login");

    let code = totp_code(&user.secret, 0);
    let res = try_login(&app, &user.client, &user.email, PASSWORD, &code).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/staff/");
    let (status, body, _) = page(&user.client, &app.url("/staff/?lang=en")).await;
    assert_eq!(status, 200);
    assert!(body.contains("Cases that need a human"), "{body}");
    assert!(body.contains(&user.email));

    // The same time step cannot be used twice.
    let other = client();
    let res = try_login(&app, &other, &user.email, PASSWORD, &code).await;
    assert_eq!(res.status(), 401);

    // Logout ends the session.
    let (_, _, csrf) = page(&user.client, &app.url("/staff/")).await;
    let res = user
        .client
        .post(app.url("/staff/logout"))
        .form(&[("csrf", csrf.unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = user.client.get(app.url("/staff/")).send().await.unwrap();
    assert_eq!(res.status(), 303);

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE actor LIKE 'staff:%' ORDER BY seq",
    )
    .fetch_all(app.state().db.read())
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "staff_enrolled",
            "staff_login",
            "staff_login_failed",
            "staff_logout"
        ]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_link_is_single_use_and_checks_password_and_code() {
    let app = TestApp::spawn().await;
    let link = privacy_portal::workflow::staff_auth::add(
        app.state(),
        "new@kaasboer.example",
        "agent",
        "cli",
    )
    .await
    .unwrap();
    let path = link.strip_prefix(&app.base).unwrap().to_string();
    let c = client();
    let (_, body, csrf) = page(&c, &app.url(&format!("{path}?lang=en"))).await;
    let secret =
        staff_common::extract(r#"<code id="totp-secret">([A-Z2-7=]+)</code>"#, &body).unwrap();
    let csrf = csrf.unwrap();
    let post = |password: &'static str, again: &'static str, code: String| {
        let c = c.clone();
        let url = app.url(&path);
        let csrf = csrf.clone();
        async move {
            c.post(url)
                .form(&[
                    ("csrf", csrf),
                    ("password", password.into()),
                    ("password_again", again.into()),
                    ("code", code),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = post("too short", "too short", totp_code(&secret, 0)).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("at least 12 characters"));
    let res = post(
        "long enough password",
        "another long password",
        totp_code(&secret, 0),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = post(
        "long enough password",
        "long enough password",
        "000000".into(),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("code does not match"));
    // Reloading shows the same secret until enrolment is finished.
    let (_, body, _) = page(&c, &app.url(&path)).await;
    assert!(body.contains(&secret));
    let res = post(
        "long enough password",
        "long enough password",
        totp_code(&secret, 0),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Used: the link no longer works.
    let (status, _, _) = page(&c, &app.url(&path)).await;
    assert_eq!(status, 410);
    let (status, _, _) = page(&c, &app.url("/staff/enrol/not-a-real-token")).await;
    assert_eq!(status, 410);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_wrong_code_and_unknown_address_answer_alike() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;
    let c = client();
    let mut bodies = vec![];
    for (email, password, code) in [
        (
            user.email.clone(),
            "wrong password here".to_string(),
            totp_code(&user.secret, 0),
        ),
        (
            user.email.clone(),
            PASSWORD.to_string(),
            "123456".to_string(),
        ),
        (
            "nobody@kaasboer.example".to_string(),
            PASSWORD.to_string(),
            totp_code(&user.secret, 0),
        ),
    ] {
        let started = std::time::Instant::now();
        let res = try_login(&app, &c, &email, &password, &code).await;
        assert_eq!(res.status(), 401);
        let body = res.text().await.unwrap();
        let msg = staff_common::extract(
            r#"<p class="error" role="alert" id="login-error">([^<]+)</p>"#,
            &body,
        )
        .unwrap();
        bodies.push((msg, started.elapsed()));
    }
    assert!(
        bodies.iter().all(|(m, _)| m == &bodies[0].0),
        "identical answers"
    );
    // Every path costs one argon2 verification.
    let unknown = bodies[2].1.as_secs_f64();
    let known = bodies[0].1.as_secs_f64();
    assert!(unknown > known / 4.0, "unknown {unknown} vs known {known}");
    // The wrong TOTP was not accepted with the right password; the failures count.
    let key = staff_auth::failure_key(app.state(), &user.email);
    assert_eq!(
        app.scalar(
            "SELECT failures FROM staff_login_failures WHERE key_hash = $1",
            &key
        )
        .await,
        2
    );
    // A recovery code works once instead of the app code.
    let res = try_login(
        &app,
        &c,
        &user.email,
        PASSWORD,
        &user.recovery[0].to_uppercase(),
    )
    .await;
    assert_eq!(res.status(), 303);
    let c2 = client();
    let res = try_login(&app, &c2, &user.email, PASSWORD, &user.recovery[0]).await;
    assert_eq!(res.status(), 401);
    // Nothing secret in the logs.
    let logs = common::logs();
    assert!(!logs.contains(PASSWORD));
    assert!(!logs.contains(&user.email));
    assert!(!logs.contains(&user.recovery[0]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;
    let c = client();
    let key = staff_auth::failure_key(app.state(), &user.email);
    let unlock = || async {
        sqlx::query("UPDATE staff_login_failures SET locked_until = $1 WHERE key_hash = $2")
            .bind(privacy_portal::store::now() - 1)
            .bind(&key)
            .execute(app.state().db.write())
            .await
            .unwrap();
    };
    // Five wrong passwords, each after the previous wait has run out.
    for _ in 0..5 {
        unlock().await;
        let res = try_login(&app, &c, &user.email, "not the password!", "000000").await;
        assert_eq!(res.status(), 401);
    }
    let locked_for = app
        .scalar(
            "SELECT locked_until FROM staff_login_failures WHERE key_hash = $1",
            &key,
        )
        .await
        - privacy_portal::store::now();
    assert!(locked_for > 600, "locked for {locked_for} s");
    // Right password and code: still refused, with the same answer.
    let res = try_login(&app, &c, &user.email, PASSWORD, &totp_code(&user.secret, 0)).await;
    assert_eq!(res.status(), 401);
    // When the lock has run out, the right credentials work again.
    unlock().await;
    login(&app, &user, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_agents_cannot_manage_staff_or_see_the_register() {
    let app = TestApp::spawn().await;
    let agent = enrol(&app, "agent@kaasboer.example", "agent").await;
    let admin = enrol(&app, "admin@kaasboer.example", "admin").await;
    login(&app, &agent, 0).await;
    login(&app, &admin, 0).await;

    for path in ["/staff/members", "/staff/register", "/staff/register.csv"] {
        let res = agent.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 403, "{path}");
        let res = admin.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let (_, _, csrf) = page(&agent.client, &app.url("/staff/")).await;
    let res = agent
        .client
        .post(app.url("/staff/members"))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("email", "x@kaasboer.example".into()),
            ("role", "admin".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff WHERE email = $1",
            "x@kaasboer.example"
        )
        .await,
        0
    );

    // The admin adds a colleague and gets a one-time link.
    let res = staff_common::post_form(
        &app,
        &admin.client,
        "/staff/members",
        "/staff/members",
        &[("email", "new@kaasboer.example"), ("role", "agent")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap().replace("&#x2F;", "/");
    assert!(
        body.contains(&format!("{}/staff/enrol/", app.base)),
        "{body}"
    );

    // Disabling an account ends its sessions at the next request.
    let agent_id: String = sqlx::query_scalar("SELECT id FROM staff WHERE email = $1")
        .bind(&agent.email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    let res = staff_common::post_form(
        &app,
        &admin.client,
        "/staff/members",
        &format!("/staff/members/{agent_id}/disable"),
        &[],
    )
    .await;
    // First a page that says what disabling does; the agent is still in.
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Yes, turn off access") || body.contains("Ja, toegang uitzetten"),
        "{body}"
    );
    assert_eq!(
        agent
            .client
            .get(app.url("/staff/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = staff_common::post_form(
        &app,
        &admin.client,
        "/staff/members",
        &format!("/staff/members/{agent_id}/disable"),
        &[("confirm", "1")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = agent.client.get(app.url("/staff/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;
    let c = client();
    let res = c
        .post(app.url("/staff/login"))
        .form(&[
            ("email", user.email.as_str()),
            ("password", PASSWORD),
            ("code", &totp_code(&user.secret, 0)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_login_ends_sessions_and_old_credentials_and_gives_a_new_link() {
    let app = TestApp::spawn().await;
    let agent = enrol(&app, "agent@kaasboer.example", "agent").await;
    let admin = enrol(&app, "admin@kaasboer.example", "admin").await;
    login(&app, &agent, 0).await;
    login(&app, &admin, 0).await;
    let id_of = |email: &'static str| {
        let db = app.state().db.read().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT id FROM staff WHERE email = $1")
                .bind(email)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let agent_id = id_of("agent@kaasboer.example").await;
    let admin_id = id_of("admin@kaasboer.example").await;

    // Agents cannot reset anyone; admins cannot lock themselves out.
    let reset = |c: &reqwest::Client, form_page: &'static str, id: &str| {
        let action = format!("/staff/members/{id}/reset");
        let (c, app) = (c.clone(), &app);
        async move { staff_common::post_form(app, &c, form_page, &action, &[]).await }
    };
    assert_eq!(
        reset(&agent.client, "/staff/", &admin_id).await.status(),
        403
    );
    assert_eq!(
        reset(&admin.client, "/staff/members", &admin_id)
            .await
            .status(),
        403
    );

    let res = reset(&admin.client, "/staff/members?lang=en", &agent_id).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap().replace("&#x2F;", "/");
    assert!(
        body.contains("The login of agent@kaasboer.example has been reset."),
        "{body}"
    );
    let path = staff_common::extract(
        &format!(
            r#"<code id="enrol-link">{}(/staff/enrol/[^<]+)</code>"#,
            regex::escape(&app.base)
        ),
        &body,
    )
    .expect("a new enrolment link");

    // The agent's open session ended; the old password, authenticator and
    // recovery codes no longer open the door.
    let res = agent.client.get(app.url("/staff/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/staff/login");
    for code in [totp_code(&agent.secret, 1), agent.recovery[0].clone()] {
        let res = try_login(&app, &client(), &agent.email, PASSWORD, &code).await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM staff_recovery_codes WHERE staff_id = $1",
            &agent_id
        )
        .await,
        0
    );

    // The new link sets up a new authenticator, once.
    let again = enrol_with_link(&app, &agent.email, &path).await;
    assert_ne!(again.secret, agent.secret);
    login(&app, &again, 0).await;
    let (status, _, _) = page(&again.client, &app.url("/staff/")).await;
    assert_eq!(status, 200);
    let (status, _, _) = page(&client(), &app.url(&path)).await;
    assert_ne!(status, 200, "the link is used up");

    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_events WHERE action = 'staff_login_reset' AND detail LIKE $1",
    )
    .bind(format!("%{agent_id}%"))
    .fetch_one(app.state().db.read())
    .await
    .unwrap();
    assert_eq!(actor, format!("staff:{admin_id}"));
    app.stop().await;
}

// ---------- issue 13, item 8: the lock and the work of a failure ----------

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_during_a_lock_neither_restarts_nor_extends_it() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;
    let c = client();
    let key = staff_auth::failure_key(app.state(), &user.email);
    for _ in 0..3 {
        let res = try_login(&app, &c, &user.email, "not the password!", "000000").await;
        assert_eq!(res.status(), 401);
    }
    let state_of = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT failures, locked_until FROM staff_login_failures WHERE key_hash = $1",
        )
        .bind(&key)
        .fetch_one(app.state().db.read())
        .await
        .unwrap()
    };
    let (failures, locked_until) = state_of().await;
    assert_eq!(failures, 3);
    assert!(
        locked_until > privacy_portal::store::now(),
        "the third failure locks"
    );
    // Wrong and right passwords during the lock: refused, and the lock ends
    // when it would have ended anyway.
    for password in ["still not the password", PASSWORD] {
        let res = try_login(&app, &c, &user.email, password, &totp_code(&user.secret, 0)).await;
        assert_eq!(res.status(), 401);
        assert_eq!(state_of().await, (3, locked_until));
    }
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'staff_login_failed'")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
    assert_eq!(audited, 5, "attempts during the lock are still audited");
    sqlx::query("UPDATE staff_login_failures SET locked_until = $1 WHERE key_hash = $2")
        .bind(privacy_portal::store::now() - 1)
        .bind(&key)
        .execute(app.state().db.write())
        .await
        .unwrap();
    login(&app, &user, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_with_an_unknown_address_is_counted_and_audited_like_a_members() {
    let app = TestApp::spawn().await;
    let user = enrol(&app, "agent@kaasboer.example", "agent").await;
    let c = client();
    let failed = || async {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM staff_login_failures")
            .fetch_one(app.state().db.read())
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'staff_login_failed'",
        )
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
        (rows, events)
    };
    assert_eq!(failed().await, (0, 0));
    let res = try_login(&app, &c, &user.email, "not the password!", "000000").await;
    assert_eq!(res.status(), 401);
    assert_eq!(failed().await, (1, 1));
    let res = try_login(&app, &c, "nobody@kaasboer.example", PASSWORD, "000000").await;
    assert_eq!(res.status(), 401);
    assert_eq!(failed().await, (2, 2), "the same write and audit event");
    // Three failures lock an unknown address as they lock a member's.
    for _ in 0..2 {
        try_login(&app, &c, "nobody@kaasboer.example", PASSWORD, "000000").await;
    }
    let key = staff_auth::failure_key(app.state(), "Nobody@Kaasboer.example");
    assert!(
        app.scalar(
            "SELECT locked_until FROM staff_login_failures WHERE key_hash = $1",
            &key
        )
        .await
            > privacy_portal::store::now()
    );
    // The table holds keyed hashes, and the audit trail no address.
    let details: Vec<String> = sqlx::query_scalar(
        "SELECT actor || ' ' || detail FROM audit_events WHERE action = 'staff_login_failed'",
    )
    .fetch_all(app.state().db.read())
    .await
    .unwrap();
    assert!(details.iter().all(|d| !d.contains('@')), "{details:?}");
    app.stop().await;
}
