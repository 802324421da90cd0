//! The customer card for staff: one person's account and every request made
//! for their address, found by exact email, account id, or — also after an
//! erasure, when the address is gone — by the reference of one request.

use super::WResult;
use crate::{
    domain::Email,
    store::{cases, customers, requests, requests::RequestRow},
    AppState,
};

pub struct Card {
    /// The address, when it is still known (not after an erasure).
    pub email: Option<String>,
    pub account: Option<customers::CardAccount>,
    /// Newest first.
    pub requests: Vec<RequestRow>,
}

const MAX_REQUESTS: i64 = 200;

/// Finds the card for `term`: an exact email address, a request reference
/// (`R-1A2B3C4D`) or an account id. `None` when nothing matches.
pub async fn find(state: &AppState, term: &str) -> WResult<Option<Card>> {
    let term = term.trim();
    if term.contains('@') {
        let Some(email) = Email::parse(term) else {
            return Ok(None);
        };
        let hash = state.keys.lookup_hash(email.as_str());
        let account = customers::card_by_email(&state.db, &email).await?;
        let requests = requests::by_email_hash(&state.db, &hash, MAX_REQUESTS).await?;
        if account.is_none() && requests.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Card {
            email: Some(email.as_str().to_string()),
            account,
            requests,
        }));
    }
    if let Some(reference) = super::reference_key(term) {
        let ids = cases::by_reference(&state.db, &reference).await?;
        if let [id] = ids.as_slice() {
            if let Some(req) = requests::get(&state.db, id).await? {
                let requests =
                    requests::by_email_hash(&state.db, &req.email_hash, MAX_REQUESTS).await?;
                // After an erasure the requests have no address left; the
                // first one that still has it names the person.
                let email = requests
                    .iter()
                    .map(|r| r.email.clone())
                    .find(|e| !e.is_empty());
                let account = match email.as_deref().and_then(Email::parse) {
                    Some(e) => customers::card_by_email(&state.db, &e).await?,
                    None => None,
                };
                return Ok(Some(Card {
                    email,
                    account,
                    requests,
                }));
            }
        }
    }
    let Some(account) = customers::card_by_id(&state.db, term).await? else {
        return Ok(None);
    };
    let (email, requests) = match account.erased_at {
        Some(_) => (None, Vec::new()),
        None => {
            let hash = state.keys.lookup_hash(&account.email);
            (
                Some(account.email.clone()),
                requests::by_email_hash(&state.db, &hash, MAX_REQUESTS).await?,
            )
        }
    };
    Ok(Some(Card {
        email,
        account: Some(account),
        requests,
    }))
}
