//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(secret,
//! "{webhook-id}.{webhook-timestamp}.{body}")).

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the sender's clock may be from ours, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a call was refused; the code goes back in the 401 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadSignature,
    StaleTimestamp,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::BadSignature => "bad_signature",
            Refusal::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// A secret as configured: `whsec_<base64>` is decoded, anything else is used
/// as raw bytes (both forms are common among webhook senders).
pub fn decode_secret(configured: &str) -> anyhow::Result<Vec<u8>> {
    match configured.strip_prefix("whsec_") {
        Some(b64) => STANDARD
            .decode(b64)
            .map_err(|e| anyhow::anyhow!("a whsec_ secret must be base64 after the prefix: {e}")),
        None => Ok(configured.as_bytes().to_vec()),
    }
}

fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value for a call (what the portal sends).
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Checks the three headers against the raw body. The header may carry
/// several space-separated signatures (during a secret rotation); one valid
/// `v1` signature is enough. The signature is checked before the clock, so
/// a sender with the right secret and a wrong clock is told so.
pub fn verify(
    secret: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(Refusal::BadSignature);
    };
    let expected = mac(secret, id, timestamp, body);
    let valid = signatures.split(' ').any(|candidate| {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            return false;
        };
        match STANDARD.decode(b64) {
            // verify_slice compares in constant time.
            Ok(tag) => expected.clone().verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    });
    if !valid {
        return Err(Refusal::BadSignature);
    }
    let sent: i64 = timestamp.parse().map_err(|_| Refusal::BadSignature)?;
    if (now - sent).abs() > TOLERANCE_SECONDS {
        return Err(Refusal::StaleTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"email":"anna@example.nl"}"#;
        let sig = sign(&secret, "msg_1", 1_700_000_000, body);
        let ok = |sigs: &str, now| {
            verify(
                &secret,
                Some("msg_1"),
                Some("1700000000"),
                Some(sigs),
                body,
                now,
            )
        };
        assert_eq!(ok(&sig, 1_700_000_010), Ok(()));
        assert_eq!(ok(&format!("v1,AAAA {sig}"), 1_700_000_000), Ok(()));
        assert_eq!(ok(&sig, 1_700_000_000 + 301), Err(Refusal::StaleTimestamp));
        assert_eq!(ok("v1,AAAA", 1_700_000_000), Err(Refusal::BadSignature));
        let other = sign(b"other", "msg_1", 1_700_000_000, body);
        assert_eq!(ok(&other, 1_700_000_000), Err(Refusal::BadSignature));
        assert_eq!(
            verify(&secret, None, Some("1700000000"), Some(&sig), body, 0),
            Err(Refusal::BadSignature)
        );
        assert_eq!(decode_secret("plain").unwrap(), b"plain");
    }

    /// The example from the Standard Webhooks specification, so our
    /// scheme is theirs byte for byte.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
