//! The customer portal in a browser's terms: forms, redirects, languages.

mod common;

use common::{code_in, location, page, TestApp};
use privacy_portal::domain::Locale;

async fn question_flow(app: &TestApp, lang: &str, email: &str, message: &str) -> String {
    let client = common::client();
    let (status, body, csrf) = page(
        &client,
        &app.url(&format!("/{lang}/question?email={email}")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("<html lang=\"{lang}\">")));
    assert!(
        body.contains(&format!("value=\"{email}\"")),
        "prefilled from ?email="
    );
    let res = client
        .post(app.url(&format!("/{lang}/question")))
        .form(&[("csrf", csrf.unwrap()), ("email", email.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code_url = location(&res);
    assert!(code_url.starts_with(&format!("/{lang}/r/")) && code_url.ends_with("/code"));

    let (status, body, csrf) = page(&client, &app.url(&code_url)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&privacy_portal::i18n::t(
        Locale::parse(lang).unwrap(),
        "code.title"
    )));
    let before = app.mail.to(email).len();
    let mail = app.mail.wait_for(email, before.max(1)).await.pop().unwrap();
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", code_in(&mail))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let request_url = location(&res);
    let (status, body, csrf) = page(&client, &app.url(&request_url)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"message\""));
    let res = client
        .post(app.url(&format!("{request_url}/submit")))
        .form(&[("csrf", csrf.unwrap()), ("message", message.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, body, _) = page(&client, &app.url(&location(&res))).await;
    assert_eq!(status, 200);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn question_via_html_forms_in_swedish() {
    let app = TestApp::spawn().await;
    let email = "sven@example.se";
    let body = question_flow(&app, "sv", email, "Vilka uppgifter delar ni med Klarna?").await;
    let due: String = sqlx::query_scalar("SELECT due_date FROM requests WHERE email = $1")
        .bind(email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    let long = privacy_portal::i18n::long_date(
        Locale::Sv,
        chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").unwrap(),
    );
    assert!(
        body.contains(&long),
        "status page states the due date {long}"
    );
    assert!(body.contains("id=\"request-status\""));
    let mails = app.mail.wait_for(email, 2).await;
    assert!(
        mails[0].text.contains("Hej"),
        "code mail in Swedish: {}",
        mails[0].text
    );
    assert!(mails[1].text.contains(&long) && mails[1].text.contains("Klarna"));
    let status: String = sqlx::query_scalar("SELECT status FROM requests WHERE email = $1")
        .bind(email)
        .fetch_one(app.state().db.read())
        .await
        .unwrap();
    assert_eq!(status, "escalated");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn question_via_html_forms_in_english_and_dutch() {
    let app = TestApp::spawn().await;
    let body = question_flow(&app, "en", "emma@example.com", "Do you sell my data?").await;
    assert!(body.contains("We&#x27;ve received your question"), "{body}");
    let body = question_flow(
        &app,
        "nl",
        "bram@example.nl",
        "Hoe lang bewaren jullie mijn IP-adres?",
    )
    .await;
    assert!(body.contains("<html lang=\"nl\">"));
    assert!(body.contains("uiterlijk"), "Dutch confirmation: {body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_code_shows_a_translated_error_on_the_same_page() {
    let app = TestApp::spawn().await;
    let client = common::client();
    let (_, _, csrf) = page(&client, &app.url("/nl/question")).await;
    let res = client
        .post(app.url("/nl/question"))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("email", "carla@example.nl".to_string()),
        ])
        .send()
        .await
        .unwrap();
    let code_url = location(&res);
    let code = code_in(&app.mail.wait_for("carla@example.nl", 1).await[0]);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 7) % 1_000_000);
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let res = client
        .post(app.url(&code_url))
        .form(&[("csrf", csrf.unwrap()), ("code", wrong)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("Die code klopt niet"), "{body}");
    assert!(body.contains("aria-invalid=\"true\""));
    // "Send a new code" pressed right after the first: the seconds to wait,
    // not "too many attempts … 1 minutes".
    let (_, _, csrf) = page(&client, &app.url(&code_url)).await;
    let resend_url = format!("{}/resend", code_url.trim_end_matches("/code"));
    let res = client
        .post(app.url(&resend_url))
        .form(&[("csrf", csrf.unwrap())])
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    let wait = regex::Regex::new(r"Je kunt over (\d+) seconden? een nieuwe code aanvragen")
        .unwrap()
        .captures(&body)
        .unwrap_or_else(|| panic!("{body}"))[1]
        .parse::<u32>()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(!body.contains("Te veel pogingen"), "{body}");
    // A bad address on the start form: the form again, in Dutch, address kept.
    let (_, _, csrf) = page(&client, &app.url("/nl/question")).await;
    let res = client
        .post(app.url("/nl/question"))
        .form(&[
            ("csrf", csrf.unwrap()),
            ("email", "carla(at)example".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("value=\"carla(at)example\""));
    assert!(body.contains(
        &privacy_portal::i18n::t(Locale::Nl, "errors.invalid_email").replace('\'', "&#x27;")
    ));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn languages_are_negotiated_switchable_and_complete() {
    let app = TestApp::spawn().await;
    for (accept, want) in [
        ("sv-SE,sv;q=0.9,en;q=0.8", "/sv/"),
        ("nl-BE", "/nl/"),
        ("de-DE", "/en/"),
    ] {
        let res = app
            .client
            .get(app.url("/"))
            .header("accept-language", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(location(&res), want);
    }
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(location(&res), "/en/");

    let (_, body, _) = page(&app.client, &app.url("/sv/question?email=a%40b.se")).await;
    assert!(
        body.contains("href=\"&#x2F;nl&#x2F;question?email=a%40b.se\""),
        "switcher keeps page and query"
    );
    assert!(body.contains("hreflang=\"en\""));

    // Each landing page offers the five kinds and the rights in its own language.
    for lang in Locale::ALL {
        let (status, body, _) = page(&app.client, &app.url(&format!("/{}/", lang.as_str()))).await;
        assert_eq!(status, 200);
        for kind in ["export", "delete", "change_email", "object", "question"] {
            let title = privacy_portal::i18n::t(lang, &format!("kinds.{kind}.title"))
                .replace('\'', "&#x27;");
            assert!(body.contains(&title), "{lang:?} landing lacks {kind}");
        }
        assert!(body.contains(&privacy_portal::i18n::t(lang, "landing.rights_title")));
    }
    // Every kind has its start page with the address form.
    for slug in ["export", "delete", "change-email", "object", "question"] {
        let (status, body, _) = page(&app.client, &app.url(&format!("/en/{slug}"))).await;
        assert_eq!(status, 200);
        assert!(body.contains("id=\"email\""), "{slug} start form");
    }

    // Unknown pages: a translated 404, never a raw error.
    let (status, body, _) = page(&app.client, &app.url("/nl/bestaat-niet")).await;
    assert_eq!(status, 404);
    assert!(body.contains("<html lang=\"nl\">"));
    assert!(body.contains(&privacy_portal::i18n::t(Locale::Nl, "problems.not_found")));
    let (status, _, _) = page(&app.client, &app.url("/de/")).await;
    assert_eq!(status, 404);
    let (status, _, _) = page(&app.client, &app.url("/en/r/not-a-uuid/code")).await;
    assert_eq!(status, 404);
    // The dev mailbox exists only in demo mode.
    assert_eq!(page(&app.client, &app.url("/dev/mail")).await.0, 404);
    app.stop().await;
}

/// The pages that depend only on the company file and the language are
/// rendered once and served from memory: every request gets the same page
/// as the first, in its own language, and a query string still reaches the
/// language switcher's links.
#[tokio::test(flavor = "multi_thread")]
async fn company_pages_are_the_same_every_time_and_keep_their_query() {
    let app = TestApp::spawn().await;
    let client = common::client();
    for path in ["/nl/", "/sv/privacy", "/en/help"] {
        let (status, first, _) = page(&client, &app.url(path)).await;
        assert_eq!(status, 200);
        let (_, second, _) = page(&client, &app.url(path)).await;
        assert_eq!(first, second, "{path}");
        assert!(
            first.contains(&format!("lang=\"{}\"", &path[1..3])),
            "{path}"
        );
    }
    let (status, body, _) = page(&client, &app.url("/en/privacy?from=footer")).await;
    assert_eq!(status, 200);
    assert!(body.contains("&#x2F;nl&#x2F;privacy?from=footer"), "{body}");
    let (status, _, _) = page(&client, &app.url("/en/help/no-such-topic")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Issue 17, "Wording": the code mail says what someone wants in a plain
/// sentence and until when the code works; a deep link names the purpose as
/// an action; company data such as a country is in the reader's language.
#[tokio::test(flavor = "multi_thread")]
async fn mails_and_pages_say_it_plainly() {
    let app = TestApp::spawn().await;

    app.create("export", "woorden@example.nl", "nl").await;
    let mail = app
        .mail
        .wait_for("woorden@example.nl", 1)
        .await
        .pop()
        .unwrap();
    assert!(
        mail.text.contains(
            "Iemand (hopelijk jij) wil bij Kaasboer Demo B.V. een kopie van je gegevens opvragen."
        ),
        "{}",
        mail.text
    );
    assert!(!mail.text.contains("om het volgende gevraagd"));
    let valid = regex::Regex::new(r"De code is geldig tot \d{2}:\d{2} \(15 minuten\)").unwrap();
    assert!(valid.is_match(&mail.text), "{}", mail.text);
    assert!(valid.is_match(&mail.html), "{}", mail.html);

    app.create("question", "ord@example.se", "sv").await;
    let mail = app.mail.wait_for("ord@example.se", 1).await.pop().unwrap();
    assert!(
        mail.text.contains(
            "Någon (förhoppningsvis du) vill ställa en fråga till Kaasboer Demo B.V. om din integritet."
        ),
        "{}",
        mail.text
    );
    assert!(
        regex::Regex::new(r"Koden gäller till kl\. \d{2}:\d{2} \(15 minuter\)")
            .unwrap()
            .is_match(&mail.text)
    );

    let (status, body, _) = page(&app.client, &app.url("/sv/object?purpose=newsletter")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Du är på väg att avsluta nyhetsbrevet."),
        "{body}"
    );

    // The demo company's address ends in "Nederland"; its newsletter
    // service is in the "USA".
    let (_, body, _) = page(&app.client, &app.url("/sv/privacy")).await;
    assert!(body.contains("Nederländerna"), "country in Swedish");
    let (_, body, _) = page(&app.client, &app.url("/nl/privacy")).await;
    assert!(body.contains("(Verenigde Staten)"), "country in Dutch");
    let (_, body, _) = page(&app.client, &app.url("/en/privacy")).await;
    assert!(body.contains("Netherlands") && body.contains("(United States)"));

    use privacy_portal::i18n::t;
    assert!(t(Locale::Nl, "email.objection_accepted.subject").contains("bezwaar is gehonoreerd"));
    assert!(
        t(Locale::Nl, "email.email_changed_old.intro").contains("Het e-mailadres van je account")
    );
    app.stop().await;
}
