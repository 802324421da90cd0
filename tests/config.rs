//! The company configuration: the examples are complete, and a missing
//! translation or field stops the portal with a line naming it.

use std::process::Command;

use privacy_portal::config::{self, LegalBasis, ObjectionKind};

const EXAMPLE: &str = include_str!("../config/example.toml");
const EXAMPLE_SE: &str = include_str!("../config/example-se.toml");

#[test]
fn both_examples_and_the_demo_company_parse_and_validate() {
    let nl = config::parse_company(EXAMPLE, "config/example.toml").unwrap();
    assert_eq!(nl.country, privacy_portal::domain::deadline::Country::NL);
    let se = config::parse_company(EXAMPLE_SE, "config/example-se.toml").unwrap();
    assert_eq!(se.country, privacy_portal::domain::deadline::Country::SE);
    let demo = config::parse_company(config::DEMO_COMPANY_TOML, "demo").unwrap();
    assert_eq!(demo.name, "Kaasboer Demo B.V.");
    assert_eq!(demo.other_systems.len(), 3);
    for c in [&nl, &se, &demo] {
        let n = &c.privacy_notice;
        assert!(!n.categories.is_empty() && !n.purposes.is_empty() && !n.recipients.is_empty());
        // Every kind of objection and a guidance page for each self-service change.
        assert!(c
            .objection_purposes
            .iter()
            .any(|p| p.kind == ObjectionKind::Consent));
        assert!(c
            .objection_purposes
            .iter()
            .any(|p| p.kind == ObjectionKind::DirectMarketing));
        assert!(c
            .objection_purposes
            .iter()
            .any(|p| p.kind == ObjectionKind::LegitimateInterest));
        for topic in ["delivery-address", "phone-number", "bank-account"] {
            assert!(c.guidance_topic(topic).is_some(), "{topic}");
        }
        assert!(!c.reply_templates.is_empty());
    }
    // Short letters a–f name the same legal bases as the long names.
    assert_eq!(
        se.privacy_notice.purposes[0].legal_basis,
        LegalBasis::Contract
    );
    assert_eq!(
        se.privacy_notice.purposes[3].legal_basis,
        LegalBasis::LegitimateInterests
    );
    assert_eq!(LegalBasis::LegitimateInterests.article(), "6(1)(f)");
}

fn without_swedish_newsletter_title() -> String {
    let full = r#"title = { nl = "Nieuwsbrief", sv = "Nyhetsbrev", en = "Newsletter" }"#;
    assert!(EXAMPLE.contains(full));
    EXAMPLE.replacen(
        full,
        r#"title = { nl = "Nieuwsbrief", en = "Newsletter" }"#,
        1,
    )
}

#[test]
fn every_missing_translation_and_field_is_named_with_its_file() {
    let e = config::parse_company(&without_swedish_newsletter_title(), "shop.toml").unwrap_err();
    assert_eq!(
        e.0,
        "shop.toml: company.objection_purposes[0].title.sv is missing"
    );

    // Several problems at once: all of them, on one line.
    let broken = EXAMPLE
        .replacen(r#"en = "Delivers your parcels." }"#, r#"en = "" }"#, 1)
        .replacen(
            "legal_basis = \"consent\"",
            "legal_basis = \"legitimate_interests\"",
            1,
        )
        .replacen("name = \"Mr. J. de Boer\"", "name = \"\"", 1);
    let e = config::parse_company(&broken, "shop.toml").unwrap_err();
    assert!(!e.0.contains('\n'), "{e}");
    for named in [
        "company.privacy_notice.recipients[0].role.en is missing",
        "company.privacy_notice.purposes[2].legitimate_interest is missing",
        "company.dpo.name is missing",
    ] {
        assert!(e.0.contains(named), "{named} in {e}");
    }

    // A whole section left out is named by the parser, with the line.
    let start = EXAMPLE.find("[company.privacy_notice]").unwrap();
    let end = EXAMPLE.find("# ---------- objection").unwrap();
    let no_notice = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    let e = config::parse_company(&no_notice, "shop.toml").unwrap_err();
    assert!(
        e.0.starts_with("shop.toml: ") && e.0.contains("privacy_notice"),
        "{e}"
    );

    // An unknown legal basis or objection kind is refused, not guessed.
    let e = config::parse_company(
        &EXAMPLE.replacen("legal_basis = \"contract\"", "legal_basis = \"g\"", 1),
        "shop.toml",
    )
    .unwrap_err();
    assert!(e.0.contains("shop.toml") && e.0.contains("line"), "{e}");
}

#[test]
fn serve_refuses_to_start_when_a_swedish_text_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("shop.toml");
    std::fs::write(&cfg, without_swedish_newsletter_title()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_privacy-portal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTAL_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env(
            "PORTAL_DATABASE_URL",
            format!("sqlite://{}/p.db", dir.path().display()),
        )
        .env("PORTAL_SMTP_URL", "smtp://127.0.0.1:2525")
        .env("PORTAL_SECRET_KEY", "ab".repeat(32))
        .env("PORTAL_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("shop.toml") && err.contains("company.objection_purposes[0].title.sv"),
        "{err}"
    );
}

#[test]
fn the_art30_record_lists_every_purpose_with_basis_categories_recipients_and_retention() {
    let company = config::parse_company(EXAMPLE, "config/example.toml").unwrap();
    for locale in privacy_portal::domain::Locale::ALL {
        let record = privacy_portal::workflow::processing_record::build(&company, locale);
        assert_eq!(
            record.activities.len(),
            company.privacy_notice.purposes.len()
        );
        for (a, p) in record
            .activities
            .iter()
            .zip(&company.privacy_notice.purposes)
        {
            assert_eq!(a.purpose, p.name.get(locale));
            assert!(a.legal_basis.contains("6(1)"), "{}", a.legal_basis);
            assert_eq!(a.categories.len(), p.categories.len());
            assert_eq!(a.recipients.len(), company.privacy_notice.recipients.len());
            assert_eq!(a.retention.len(), p.categories.len(), "{a:?}");
        }
        // The enforced period shows where the file sets one.
        let usage = record
            .activities
            .iter()
            .flat_map(|a| &a.retention)
            .find(|r| r.contains(&privacy_portal::i18n::t(locale, "retention.enforced")[..5]));
        assert!(usage.is_some(), "{locale:?}");
        let csv = privacy_portal::workflow::processing_record::csv(&record, locale);
        assert_eq!(csv.lines().count(), 1 + record.activities.len());
        let sep = if locale == privacy_portal::domain::Locale::En {
            "\",\""
        } else {
            "\";\""
        };
        assert!(csv.lines().next().unwrap().contains(sep));
    }
}
