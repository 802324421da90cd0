use std::time::Duration;

use lettre::{
    transport::smtp::client::{Tls, TlsParameters},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::store::Db;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `demo`: mail lands in a table shown at /dev/mail.
    DevMailbox(Db),
}

pub enum SendError {
    /// Worth trying again later (server down, 4xx, timeout).
    Transient(&'static str),
    /// The server refused for good (5xx).
    Permanent(&'static str),
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let end = rest.find([':', '/', '?']).unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty()).then_some(host)
}

pub fn validate_smtp_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Err("must start with smtp:// or smtps://".into());
    }
    if host_of(url).is_none() {
        return Err("has no host".into());
    }
    build_smtp(url).map(|_| ())
}

/// `smtp://` upgrades with STARTTLS when the server offers it (CONTRACT.md);
/// an explicit `?tls=required` or `smtps://` is honoured as lettre reads it.
pub fn build_smtp(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| e.to_string())?;
    let builder = if url.starts_with("smtp://") && !url.contains("tls=") {
        let host = host_of(url).ok_or("has no host")?;
        let params = TlsParameters::new(host.to_string()).map_err(|e| e.to_string())?;
        builder.tls(Tls::Opportunistic(params))
    } else {
        builder
    };
    Ok(builder.timeout(Some(Duration::from_secs(20))).build())
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
            Transport::Smtp(t) => match t.send(msg).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent("smtp_permanent")),
                Err(e) if e.is_transient() => Err(SendError::Transient("smtp_transient")),
                Err(e) if e.is_timeout() => Err(SendError::Transient("smtp_timeout")),
                Err(_) => Err(SendError::Transient("smtp_unreachable")),
            },
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
