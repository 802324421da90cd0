//! CSRF tokens for HTML forms: one random token per session, compared in
//! constant time. (The portal pages keep their own copy of these two
//! helpers in `portal.rs`; both use the same session key.)

use actix_session::Session;

use crate::crypto;

pub fn token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>("csrf") {
        return t;
    }
    let t = crypto::random_token();
    let _ = session.insert("csrf", &t);
    t
}

pub fn valid(session: &Session, given: &str) -> bool {
    matches!(session.get::<String>("csrf"),
        Ok(Some(expected)) if !given.is_empty() && crypto::ct_eq(&expected, given))
}
