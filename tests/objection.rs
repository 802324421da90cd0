//! Objection and consent, the privacy notice and the guidance pages — all
//! from the company configuration.

mod common;

use common::{code_in, location, page, TestApp};
use privacy_portal::{
    connector::AccountRef,
    domain::{Email, Locale},
    i18n::{t, t_args},
};
use serde_json::{json, Value};

/// What tera's HTML escaping makes of a configured text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;")
}

async fn submit(app: &TestApp, id: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/requests/{id}/submit")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The account's consents as the connector reports them.
async fn consents(app: &TestApp, email: &str) -> std::collections::BTreeMap<String, bool> {
    let state = app.state();
    let acc: AccountRef = state
        .connector
        .find_account(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .expect("account exists");
    state.connector.consents(&acc).await.unwrap()
}

async fn audit_actions(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events WHERE request_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(app.state().db.read())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn privacy_notice_shows_every_purpose_recipient_and_retention_in_each_language() {
    let app = TestApp::spawn().await;
    let company = app.state().settings.company.clone();
    let notice = &company.privacy_notice;
    for lang in Locale::ALL {
        let l = lang.as_str();
        let (status, body, _) = page(&app.client, &app.url(&format!("/{l}/privacy"))).await;
        assert_eq!(status, 200, "{l}");
        assert!(body.contains(&format!("<html lang=\"{l}\">")));
        assert!(body.contains(&esc(&t(lang, "privacy.title"))), "{l}");
        for p in &notice.purposes {
            assert!(
                body.contains(&esc(p.name.get(lang))),
                "{l}: purpose {}",
                p.id
            );
            assert!(
                body.contains(&esc(p.description.get(lang))),
                "{l}: {}",
                p.id
            );
            assert!(body.contains(p.legal_basis.article()), "{l}: {}", p.id);
            if let Some(i) = &p.legitimate_interest {
                assert!(body.contains(&esc(i.get(lang))), "{l}: interest {}", p.id);
            }
        }
        for r in &notice.recipients {
            assert!(body.contains(&esc(&r.name)), "{l}: recipient {}", r.name);
            assert!(body.contains(&esc(r.role.get(lang))), "{l}: {}", r.name);
        }
        for c in &notice.categories {
            assert!(
                body.contains(&esc(c.name.get(lang))),
                "{l}: category {}",
                c.id
            );
            assert!(body.contains(&esc(c.retention.get(lang))), "{l}: {}", c.id);
        }
        assert!(body.contains(&esc(notice.source.get(lang))));
        assert!(body.contains(&esc(notice.automated_decisions.get(lang))));
        for optional in [&notice.transfers, &notice.provision] {
            let text = optional.as_ref().expect("the demo company states it");
            assert!(body.contains(&esc(text.get(lang))), "{l}");
        }
        assert!(body.contains(&esc(&company.dpo.email)));
        assert!(body.contains(&esc(&company.address[0])));
        // The demo company is Dutch: the Dutch authority and its complaint page.
        assert!(body.contains(&esc(&t(lang, "authority.nl"))), "{l}");
        assert!(body.contains("autoriteitpersoonsgegevens.nl"));
        // Links into each request kind, the objection deep links, guidance.
        for slug in ["export", "change-email", "delete", "object", "question"] {
            assert!(
                body.contains(&format!("href=\"/{l}/{slug}\"")),
                "{l}: link to {slug}"
            );
        }
        assert!(body.contains(&format!("href=\"/{l}/object?purpose=newsletter\"")));
        assert!(body.contains(&format!("href=\"/{l}/help/bank-account\"")));
    }
    // Every page links to the notice.
    let (_, landing, _) = page(&app.client, &app.url("/sv/")).await;
    assert!(landing.contains("href=\"/sv/privacy\""));
    assert!(landing.contains(&esc(&t(Locale::Sv, "privacy.footer_link"))));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guidance_pages_show_the_configured_steps_and_a_way_to_ask() {
    let app = TestApp::spawn().await;
    let company = app.state().settings.company.clone();
    for lang in Locale::ALL {
        let l = lang.as_str();
        for topic in ["delivery-address", "phone-number", "bank-account"] {
            let g = company.guidance_topic(topic).unwrap();
            let (status, body, _) =
                page(&app.client, &app.url(&format!("/{l}/help/{topic}"))).await;
            assert_eq!(status, 200, "{l} {topic}");
            assert!(body.contains(&esc(g.title.get(lang))));
            for step in &g.steps {
                assert!(body.contains(&esc(step.get(lang))), "{l} {topic}");
            }
            assert!(body.contains(&format!("href=\"/{l}/question\"")));
            assert!(body.contains(&esc(&t(lang, "help.ask"))));
        }
        let (status, body, _) = page(&app.client, &app.url(&format!("/{l}/help"))).await;
        assert_eq!(status, 200);
        assert!(body.contains(&format!("href=\"/{l}/help/phone-number\"")));
    }
    let (status, body, _) = page(&app.client, &app.url("/nl/help/bestaat-niet")).await;
    assert_eq!(status, 404);
    assert!(body.contains(&t(Locale::Nl, "problems.not_found")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_withdrawal_and_direct_marketing_objection_take_effect_at_once() {
    let app = TestApp::spawn().await;
    let email = "anna@example.nl";
    let before = consents(&app, email).await;
    assert_eq!(before.get("newsletter"), Some(&true));
    let (id, token) = app.verified("object", email, "nl").await;

    // Nothing picked, or something the company does not have: nothing changes.
    let (status, body) = submit(&app, &id, &token, json!({"purposes": []})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_input"))
    );
    assert_eq!(body["field"], "purposes");
    let (status, body) = submit(&app, &id, &token, json!({"purposes": ["horoscope"]})).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("purposes")));
    assert_eq!(consents(&app, email).await, before);

    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"purposes": ["newsletter", "phone_offers"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["outcome"], "objection_applied");

    // The customer store has it at once; other consents are untouched.
    let after = consents(&app, email).await;
    assert_eq!(after.get("newsletter"), Some(&false));
    assert_eq!(after.get("phone_offers"), Some(&false));
    assert_eq!(after.get("reviews"), before.get("reviews"));

    // Confirmation in Dutch, naming what stopped.
    let mails = app.mail.wait_for(email, 2).await;
    let confirm = &mails[1];
    assert!(
        confirm.subject.contains("We zijn gestopt"),
        "{}",
        confirm.subject
    );
    assert!(confirm.text.contains("Nieuwsbrief"), "{}", confirm.text);
    assert!(confirm.text.contains("Telefonische aanbiedingen"));
    assert!(!confirm.text.contains("Opnemen van telefoongesprekken"));

    // One audited transition; a repeat changes nothing.
    let actions = audit_actions(&app, &id).await;
    assert!(
        actions.contains(&"objection_applied".to_string()),
        "{actions:?}"
    );
    let (status, again) = submit(&app, &id, &token, json!({"purposes": ["reviews"]})).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("completed")));
    assert_eq!(consents(&app, email).await, after);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn legitimate_interest_objection_needs_reasons_goes_to_staff_and_staff_accept_stops_it() {
    let app = TestApp::spawn().await;
    let email = "bram@example.nl";
    let (id, token) = app.verified("object", email, "en").await;

    let (status, body) = submit(&app, &id, &token, json!({"purposes": ["call_recording"]})).await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "reason");
    assert_eq!(
        body["detail"],
        t(Locale::En, "object.errors.reason_required")
    );

    // Mixed: the newsletter stops now, the recording waits for a human.
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"purposes": ["call_recording", "newsletter"], "reason": "I am a journalist and my calls are confidential."}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "escalated");
    assert_eq!(body["reasons"], json!(["legitimate_interest_objection"]));
    let now = consents(&app, email).await;
    assert_eq!(now.get("newsletter"), Some(&false));
    assert_eq!(
        now.get("call_recording"),
        None,
        "not stopped before staff decide"
    );

    let mails = app.mail.wait_for(email, 2).await;
    assert!(mails[1].text.contains("Newsletter"));
    assert!(mails[1].text.contains("Recording of phone calls"));

    // In the staff queue with the customer's words.
    let staff = app.staff_token().await;
    let case: Value = app
        .client
        .get(app.url(&format!("/api/v1/staff/cases/{id}")))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(case["case"]["status"], "escalated", "{case}");
    assert!(case.to_string().contains("journalist"), "{case}");

    // Staff accept: the connector stops it and the customer is told.
    let row = privacy_portal::workflow::object::staff_accept(app.state(), &id, "staff:agent")
        .await
        .unwrap();
    assert_eq!(row.status, "completed");
    assert_eq!(row.outcome.as_deref(), Some("objection_accepted"));
    assert_eq!(
        consents(&app, email).await.get("call_recording"),
        Some(&false)
    );
    let mails = app.mail.wait_for(email, 3).await;
    assert!(
        mails[2].subject.contains("accepted"),
        "{}",
        mails[2].subject
    );
    assert!(mails[2].text.contains("Recording of phone calls"));
    assert!(audit_actions(&app, &id)
        .await
        .contains(&"objection_accepted".to_string()));
    // Only once.
    let again =
        privacy_portal::workflow::object::staff_accept(app.state(), &id, "staff:agent").await;
    assert!(again.is_err());

    // The customer's status page says so.
    let res = app
        .client
        .get(app.url(&format!("/api/v1/requests/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "completed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_reject_an_objection_with_reasons_complaint_authority_and_court() {
    let app = TestApp::spawn().await;
    let email = "carla@example.nl";
    let (id, token) = app.verified("object", email, "nl").await;
    let (status, body) = submit(
        &app,
        &id,
        &token,
        json!({"purposes": ["analytics"], "reason": "Ik wil niet dat mijn bestellingen worden geanalyseerd."}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("escalated")));
    let mails = app.mail.wait_for(email, 2).await;
    assert!(
        mails[1].subject.contains("bezwaar ontvangen"),
        "{}",
        mails[1].subject
    );

    let staff = app.staff_token().await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/staff/cases/{id}/actions")))
        .bearer_auth(&staff)
        .json(
            &json!({"action": "reject", "reason": "We gebruiken alleen geanonimiseerde totalen."}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mails = app.mail.wait_for(email, 3).await;
    let refusal = &mails[2].text;
    assert!(refusal.contains("geanonimiseerde totalen"), "{refusal}");
    assert!(refusal.contains("Autoriteit Persoonsgegevens"), "{refusal}");
    assert!(refusal.contains(&t(Locale::Nl, "email.case_rejected.court")));
    // Nothing was stopped.
    assert_eq!(consents(&app, email).await.get("analytics"), None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_address_without_an_account_is_told_so() {
    let app = TestApp::spawn().await;
    let (id, token) = app.verified("object", "nobody@example.nl", "en").await;
    let (status, body) = submit(&app, &id, &token, json!({"purposes": ["newsletter"]})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("no_account")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn newsletter_footer_deep_link_in_swedish_preselects_and_still_needs_the_code() {
    let app = TestApp::spawn().await;
    let email = "sven@example.se";
    let sv = Locale::Sv;
    let (status, body, csrf) = page(
        &app.client,
        &app.url(&format!("/sv/object?purpose=newsletter&email={email}")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"name="purpose" value="newsletter""#),
        "{body}"
    );
    assert!(body.contains(&esc(&t_args(
        sv,
        "object.preselected_stop",
        &[("stop", "avsluta nyhetsbrevet")]
    ))));
    assert!(body.contains("Du är på väg att avsluta nyhetsbrevet."));
    let res = app
        .client
        .post(app.url("/sv/object"))
        .form(&[
            ("csrf", csrf.unwrap().as_str()),
            ("email", email),
            ("purpose", "newsletter"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code_url = location(&res);
    let id = code_url.split('/').nth(3).unwrap().to_string();

    // Without the code, the form with the account's consents stays closed.
    let res = app
        .client
        .get(app.url(&format!("/sv/r/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let anon = common::client();
    let (status, _, _) = page(&anon, &app.url(&format!("/sv/r/{id}"))).await;
    assert_ne!(status, 200);

    let mails = app.mail.wait_for(email, 1).await;
    let (_, _, csrf) = page(&app.client, &app.url(&code_url)).await;
    let res = app
        .client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code_in(&mails[0]))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    let (status, body, csrf) = page(&app.client, &app.url(&format!("/sv/r/{id}"))).await;
    assert_eq!(status, 200);
    assert!(body.contains(&esc(&t(sv, "object.form.title"))));
    assert!(
        body.contains(r#"name="purpose_newsletter" value="yes" checked"#),
        "preselected: {body}"
    );
    assert!(body.contains(&esc(&t(sv, "object.form.state_consent_given"))));
    assert!(body.contains("Inspelning av telefonsamtal"));
    let csrf = csrf.unwrap();

    // A legitimate-interest purpose without reasons: the form again, in Swedish, ticks kept.
    let res = app
        .client
        .post(app.url(&format!("/sv/r/{id}/submit")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("purpose_newsletter", "yes"),
            ("purpose_analytics", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains(&esc(&t(sv, "object.errors.reason_required"))));
    assert!(body.contains(r#"name="purpose_analytics" value="yes" checked"#));
    assert_eq!(consents(&app, email).await.get("newsletter"), Some(&true));

    let res = app
        .client
        .post(app.url(&format!("/sv/r/{id}/submit")))
        .form(&[("csrf", csrf.as_str()), ("purpose_newsletter", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, body, _) = page(&app.client, &app.url(&format!("/sv/r/{id}"))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&esc(&t(sv, "object.done.completed"))),
        "{body}"
    );
    assert!(body.contains("Nyhetsbrev"));
    assert_eq!(consents(&app, email).await.get("newsletter"), Some(&false));
    let mails = app.mail.wait_for(email, 2).await;
    assert!(
        mails[1].subject.contains("Vi har slutat"),
        "{}",
        mails[1].subject
    );
    app.stop().await;
}

/// Starts a request through the HTML pages and enters the mailed code;
/// returns the request id (the client's session is then verified for it).
async fn html_verified(app: &TestApp, lang: &str, email: &str) -> String {
    let (_, _, csrf) = page(&app.client, &app.url(&format!("/{lang}/object"))).await;
    let before = app.mail.to(email).len();
    let res = app
        .client
        .post(app.url(&format!("/{lang}/object")))
        .form(&[("csrf", csrf.unwrap().as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code_url = location(&res);
    let id = code_url.split('/').nth(3).unwrap().to_string();
    let mails = app.mail.wait_for(email, before + 1).await;
    let (_, _, csrf) = page(&app.client, &app.url(&code_url)).await;
    let res = app
        .client
        .post(app.url(&code_url))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("code", code_in(mails.last().unwrap())),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_for_no_account_and_for_an_objection_waiting_for_staff() {
    let app = TestApp::spawn().await;
    // No account: said plainly, with the way forward, in Dutch.
    let id = html_verified(&app, "nl", "niemand@example.nl").await;
    let (status, body, _) = page(&app.client, &app.url(&format!("/nl/r/{id}"))).await;
    assert_eq!(status, 200);
    assert!(body.contains(&esc(&t(Locale::Nl, "errors.no_account"))));
    assert!(body.contains(&esc(&t(Locale::Nl, "object.no_account_next"))));

    // An objection on legitimate interest: the page says who looks at it and by when.
    let email = "daan@example.nl";
    let id = html_verified(&app, "en", email).await;
    let (_, body, csrf) = page(&app.client, &app.url(&format!("/en/r/{id}"))).await;
    assert!(body.contains("id=\"reason\""), "reasons field offered");
    let res = app
        .client
        .post(app.url(&format!("/en/r/{id}/submit")))
        .form(&[
            ("csrf", csrf.unwrap().as_str()),
            ("purpose_call_recording", "yes"),
            ("reason", "My calls are about my health."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, body, _) = page(&app.client, &app.url(&format!("/en/r/{id}"))).await;
    assert_eq!(status, 200);
    assert!(body.contains(&esc(&t(Locale::En, "object.done.pending_title"))));
    assert!(body.contains("Recording of phone calls"));
    let due: String = sqlx::query_scalar("SELECT due_date FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    let due = chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap();
    assert!(body.contains(&privacy_portal::i18n::long_date(Locale::En, due)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_consent_shows_in_a_subsequent_export() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let email = "eva@example.nl";
    let (id, token) = app.verified("object", email, "nl").await;
    let (status, body) = submit(&app, &id, &token, json!({"purposes": ["newsletter"]})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("completed")));
    // The confirmation first, so the next code mail is the newest one.
    app.mail.wait_for(email, 2).await;

    let (id, token) = app.verified("export", email, "nl").await;
    let (status, _) = submit(&app, &id, &token, json!({})).await;
    assert_eq!(status, 202);
    let mut archive = None;
    for _ in 0..200 {
        let res = app
            .client
            .get(app.url(&format!("/api/v1/requests/{id}/archive")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            archive = Some(res.bytes().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let archive = archive.expect("the export completes within 10 s");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let mut json = String::new();
    zip.by_name("data.json")
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    let data: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        data["profile"]["consents"]["newsletter"],
        json!(false),
        "{data}"
    );
    app.stop().await;
}
