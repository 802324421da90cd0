use std::{sync::Mutex, time::Duration};

use lettre::{
    transport::smtp::{
        client::{Tls, TlsParameters},
        AsyncSmtpTransportBuilder,
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::store::Db;

pub enum Transport {
    Smtp(Smtp),
    /// `demo`: mail lands in a table shown at /dev/mail.
    DevMailbox(Db),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// This mail was turned away for now (4xx): try it again later.
    Transient(&'static str),
    /// The server could not be reached or did not answer in time (connect,
    /// greeting, TLS, any command, DATA): no point trying the next mail now.
    Unreachable(&'static str),
    /// The server refused for good (5xx).
    Permanent(&'static str),
}

/// What `PORTAL_SMTP_URL` asks of TLS, read before lettre sees the URL.
#[derive(Debug, PartialEq, Eq)]
struct SmtpUrl {
    /// The URL without our `tls=none` (lettre knows no such value; plain is
    /// its default when `tls` is absent).
    for_lettre: String,
    host: String,
    credentials: bool,
    tls: Option<String>,
}

fn parse(url: &str) -> Result<SmtpUrl, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "smtp" | "smtps") {
        return Err("must start with smtp:// or smtps://".into());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("has no host")?
        .to_string();
    // lettre sends AUTH exactly when a password is given.
    let credentials = parsed.password().is_some();
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    if tls.as_deref() == Some("none") {
        let rest: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "tls")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
    }
    Ok(SmtpUrl {
        for_lettre: parsed.to_string(),
        host,
        credentials,
        tls,
    })
}

pub fn validate_smtp_url(url: &str) -> Result<(), String> {
    builder(url).map(|_| ())
}

/// True when the operator chose to send SMTP credentials without TLS
/// (`smtp://user:pass@host?tls=none`): worth a warning at every start.
pub fn sends_credentials_in_clear(url: &str) -> bool {
    parse(url).is_ok_and(|u| u.credentials && u.tls.as_deref() == Some("none"))
}

/// The mail server's host name (no credentials), for log lines.
pub fn smtp_host(url: &str) -> Option<String> {
    parse(url).ok().map(|u| u.host)
}

/// `smtp://` upgrades with STARTTLS when the server offers it (CONTRACT.md),
/// but with credentials STARTTLS is required: a server (or a man in the
/// middle) that offers none must not get the password in clear. Only an
/// explicit `?tls=none` sends without TLS.
fn builder(url: &str) -> Result<AsyncSmtpTransportBuilder, String> {
    let u = parse(url)?;
    let starttls = |required: bool| -> Result<Tls, String> {
        let params = TlsParameters::new(u.host.clone()).map_err(|e| e.to_string())?;
        Ok(if required {
            Tls::Required(params)
        } else {
            Tls::Opportunistic(params)
        })
    };
    let builder =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&u.for_lettre).map_err(|e| e.to_string())?;
    let is_smtp = url.starts_with("smtp://");
    match (is_smtp, u.credentials, u.tls.as_deref()) {
        (true, true, Some("opportunistic")) => Err(
            "with a user and password, tls=opportunistic would send them in clear to a server without STARTTLS; \
             leave tls out (STARTTLS is then required), or write tls=none to accept that"
                .into(),
        ),
        (true, true, None) => Ok(builder.tls(starttls(true)?)),
        (true, false, None) => Ok(builder.tls(starttls(false)?)),
        _ => Ok(builder),
    }
}

/// An SMTP transport whose every send is bounded as a whole.
pub struct Smtp {
    builder: AsyncSmtpTransportBuilder,
    send_timeout: Duration,
    current: Mutex<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Smtp {
    pub fn new(url: &str, send_timeout: Duration) -> Result<Smtp, String> {
        // lettre's own timeout bounds the TCP connect; the whole dialogue
        // (greeting, TLS, every command, DATA) is bounded in `send`.
        let builder = builder(url)?.timeout(Some(send_timeout));
        Ok(Smtp {
            current: Mutex::new(builder.clone().build()),
            builder,
            send_timeout,
        })
    }

    pub async fn send(&self, msg: Message) -> Result<(), SendError> {
        let transport = self.current.lock().expect("not poisoned").clone();
        match tokio::time::timeout(self.send_timeout, transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent("smtp_permanent")),
            Ok(Err(e)) if e.is_transient() => Err(SendError::Transient("smtp_transient")),
            Ok(Err(e)) if e.is_timeout() => Err(SendError::Unreachable("smtp_timeout")),
            // Among them: STARTTLS required but not offered.
            Ok(Err(e)) if e.is_tls() || e.is_client() => Err(SendError::Unreachable("smtp_tls")),
            Ok(Err(_)) => Err(SendError::Unreachable("smtp_unreachable")),
            Err(_) => {
                self.reset(transport);
                Err(SendError::Unreachable("smtp_timeout"))
            }
        }
    }

    /// Whether the server greets, says EHLO back (and does STARTTLS when
    /// the URL asks for it); for `connectors check`.
    pub async fn check(&self) -> Result<(), &'static str> {
        let transport = self.builder.clone().build::<Tokio1Executor>();
        match tokio::time::timeout(self.send_timeout, transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("smtp_refused"),
            Ok(Err(e)) if e.is_tls() => Err("smtp_tls"),
            Ok(Err(_)) => Err("smtp_unreachable"),
            Err(_) => Err("smtp_timeout"),
        }
    }

    /// A send cut off mid-dialogue leaves its connection to lettre's pool
    /// at an unknown point of the SMTP conversation (lettre marks it broken
    /// only on errors it sees itself); later mail must not go over it, so
    /// the whole pool is replaced.
    fn reset(&self, old: AsyncSmtpTransport<Tokio1Executor>) {
        let fresh = self.builder.clone().build();
        *self.current.lock().expect("not poisoned") = fresh;
        let bound = self.send_timeout;
        // Closing says QUIT to each pooled connection; a silent server
        // would never answer it.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(bound, old.shutdown()).await;
        });
    }
}

impl Transport {
    pub async fn send(
        &self,
        outbox_id: &str,
        msg: Message,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), SendError> {
        match self {
            Transport::Smtp(t) => t.send(msg).await,
            Transport::DevMailbox(db) => crate::store::outbox::dev_deliver(
                db,
                outbox_id,
                to,
                subject,
                text,
                html,
                crate::store::now(),
            )
            .await
            .map_err(|_| SendError::Transient("dev_mailbox")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_require_starttls_unless_tls_none_is_written() {
        assert!(validate_smtp_url("smtp://u:p@mail.example:587").is_ok());
        assert!(validate_smtp_url("smtp://u:p@mail.example:587?tls=required").is_ok());
        let e = validate_smtp_url("smtp://u:p@mail.example:587?tls=opportunistic").unwrap_err();
        assert!(e.contains("tls=none") && !e.contains("p@"), "{e}");
        assert!(validate_smtp_url("smtp://u:p@mail.example:587?tls=none").is_ok());
        assert!(validate_smtp_url("smtps://u:p@mail.example").is_ok());
        assert!(sends_credentials_in_clear(
            "smtp://u:p@mail.example?tls=none"
        ));
        assert!(!sends_credentials_in_clear("smtp://u:p@mail.example"));
        assert!(!sends_credentials_in_clear("smtp://mail.example?tls=none"));
        assert_eq!(
            parse("smtp://u:p@mail.example:25?tls=none")
                .unwrap()
                .for_lettre,
            "smtp://u:p@mail.example:25"
        );
        assert!(validate_smtp_url("http://mail.example").is_err());
        assert!(validate_smtp_url("smtp://").is_err());
        assert_eq!(
            smtp_host("smtp://u:p@mail.example:25").as_deref(),
            Some("mail.example")
        );
    }
}
