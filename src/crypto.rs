//! Keys derived from `PORTAL_SECRET_KEY`, keyed hashes, tokens and the
//! at-rest encryption of the few secrets that must be recoverable (a code
//! waiting in the outbox until the mail server accepts it).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chacha20poly1305::{aead::Aead, KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Purpose-separated keys: a leak of one derived key (or a hash made with
/// it) says nothing about the others.
pub struct Keys {
    code: SecretBox<[u8; 32]>,
    lookup: SecretBox<[u8; 32]>,
    token: SecretBox<[u8; 32]>,
    seal: SecretBox<[u8; 32]>,
    cookie: SecretBox<[u8; 64]>,
    archive: SecretBox<[u8; 32]>,
    link: SecretBox<[u8; 32]>,
    audit: AuditKey,
    /// The SQL connector's `hash` strategy (the company's database).
    sql_hash: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

fn derive32(master: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("hmac takes any key length");
    mac.update(b"privacy-portal/v1/");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Keys {
    pub fn derive(master: &[u8]) -> Keys {
        let a = derive32(master, "cookie-a");
        let b = derive32(master, "cookie-b");
        let mut cookie = [0u8; 64];
        cookie[..32].copy_from_slice(&a);
        cookie[32..].copy_from_slice(&b);
        Keys {
            code: SecretBox::new(Box::new(derive32(master, "code"))),
            lookup: SecretBox::new(Box::new(derive32(master, "lookup"))),
            token: SecretBox::new(Box::new(derive32(master, "token"))),
            seal: SecretBox::new(Box::new(derive32(master, "seal"))),
            cookie: SecretBox::new(Box::new(cookie)),
            archive: SecretBox::new(Box::new(derive32(master, "archive"))),
            link: SecretBox::new(Box::new(derive32(master, "link"))),
            audit: AuditKey(SecretBox::new(Box::new(derive32(master, "audit")))),
            sql_hash: SecretBox::new(Box::new(derive32(master, "sql-hash"))),
        }
    }

    /// HMAC(key, request id ‖ code): a code is only valid for its request.
    pub fn code_hash(&self, request_id: &str, code: &str) -> String {
        keyed(
            self.code.expose_secret(),
            &[request_id.as_bytes(), code.as_bytes()],
        )
    }

    /// Stable pseudonym of a value (an email address) for limits and lookups
    /// without storing or logging the value itself.
    pub fn lookup_hash(&self, value: &str) -> String {
        keyed(self.lookup.expose_secret(), &[value.as_bytes()])
    }

    pub fn token_hash(&self, token: &str) -> String {
        keyed(self.token.expose_secret(), &[token.as_bytes()])
    }

    /// The key of one request's export archive.
    pub fn archive_key(&self, request_id: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.archive.expose_secret())
            .expect("hmac takes any key length");
        mac.update(request_id.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Signature of a download link, bound to the request and its expiry.
    pub fn link_signature(&self, request_id: &str, expires_at: i64) -> String {
        keyed(
            self.link.expose_secret(),
            &[request_id.as_bytes(), expires_at.to_string().as_bytes()],
        )
    }

    /// The key of the SQL connector's `hash`: the same value hashes the
    /// same everywhere in the company's database, and only here.
    pub fn sql_hash_key(&self) -> [u8; 32] {
        *self.sql_hash.expose_secret()
    }

    pub fn audit(&self) -> &AuditKey {
        &self.audit
    }

    pub fn cookie_key(&self) -> &[u8; 64] {
        self.cookie.expose_secret()
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("encryption of a short string cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        let pt = cipher
            .decrypt(XNonce::from_slice(&raw[..24]), &raw[24..])
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

/// The key of the audit chain: without it nobody who can write the
/// database can recompute the chain after changing an event.
pub struct AuditKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// A MAC over bytes the caller has already made unambiguous.
    pub fn mac(&self) -> Hmac<Sha256> {
        <HmacSha256 as Mac>::new_from_slice(self.0.expose_secret())
            .expect("hmac takes any key length")
    }
}

/// Length-prefixed parts, so that ("ab","c") and ("a","bc") hash differently.
fn keyed(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("hmac takes any key length");
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Creates a new file only its owner may read and write (0600): the secret
/// key, the database. Fails if the file exists.
pub fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// A uniformly random numeric code with leading zeros kept.
pub fn random_code(digits: u32) -> String {
    let n: u64 = rand::rng().random_range(0..10u64.pow(digits));
    format!("{n:0width$}", width = digits as usize)
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_is_bound_to_request() {
        let k = Keys::derive(&[7u8; 32]);
        assert_ne!(k.code_hash("r1", "123456"), k.code_hash("r2", "123456"));
        assert_eq!(k.code_hash("r1", "123456"), k.code_hash("r1", "123456"));
    }

    #[test]
    fn codes_keep_leading_zeros() {
        for _ in 0..200 {
            let c = random_code(6);
            assert_eq!(c.len(), 6);
            assert!(c.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn sealing_round_trips_and_detects_tampering() {
        let k = Keys::derive(&[1u8; 32]);
        let s = k.seal("482913");
        assert_eq!(k.open(&s).as_deref(), Some("482913"));
        let other = Keys::derive(&[2u8; 32]);
        assert!(other.open(&s).is_none());
    }
}
