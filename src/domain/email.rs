use std::fmt;

/// A syntactically valid, normalised email address.
///
/// Normalisation is trim + lowercase of the whole address: the customer
/// stores and the portal compare case-insensitively (CONTRACT.md), and one
/// canonical form keeps the per-address limits from being sidestepped by
/// changing case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let s = raw.trim().to_lowercase();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            &s,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .ok()?;
        // A domain without a dot cannot receive mail from the internet.
        if !parsed.domain().contains('.') || parsed.domain().ends_with('.') {
            return None;
        }
        Some(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Debug must never print the address: it could end up in a log line.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_spaces() {
        assert_eq!(
            Email::parse("  Anna@Example.NL ").unwrap().as_str(),
            "anna@example.nl"
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.nl",
            "anna@localhost",
            "a b@example.nl",
            "Anna <anna@example.nl>",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let e = Email::parse("secret@example.nl").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }
}
