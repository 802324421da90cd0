//! Postcode and house number as the customer states them, compared after
//! normalisation so that "1012ab" = "1012 AB" and "113 51" = "11351", while
//! "12" ≠ "12a" (a different address).

pub fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// Constant-time equality of two normalised values.
pub fn matches(stated: &str, stored: &str) -> bool {
    use subtle::ConstantTimeEq;
    let a = normalise(stated);
    let b = normalise(stored);
    !a.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_like_a_person_would() {
        assert!(matches("1012ab", "1012 AB"));
        assert!(matches("113 51", "11351"));
        assert!(matches(" 12 ", "12"));
        assert!(!matches("12", "12a"));
        assert!(!matches("", ""));
    }
}
