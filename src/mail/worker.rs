//! Delivers the outbox. Survives restarts (state lives in the table), backs
//! off exponentially, and once the server accepted a mail it is marked sent
//! before anything else happens, so it is not sent again.

use std::{sync::Arc, time::Duration};

use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    Message,
};
use tokio::sync::{watch, Notify};

use super::transport::{SendError, Transport};
use crate::{
    crypto::Keys,
    metrics::Metrics,
    store::{self, outbox, Db},
};

pub struct Worker {
    pub db: Db,
    pub transport: Transport,
    pub keys: Arc<Keys>,
    /// Mail is rendered at send time, from the context queued with it.
    pub tera: tera::Tera,
    pub from: Mailbox,
    pub notify: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub interval: Duration,
}

const LEASE_SECS: i64 = 120;

pub enum Drain {
    Done(usize),
    /// The server could not be reached; the pass stopped early.
    ServerDown,
}

enum Delivery {
    Sent,
    NotSent,
    ServerDown,
}

impl Worker {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        // While the mail server is unreachable, new mail must not wake the
        // worker into hammering it (and the database) once per request.
        let mut pause = self.retry_base;
        loop {
            let wait = match self.drain().await {
                Ok(Drain::Done(_)) => {
                    pause = self.retry_base;
                    None
                }
                Ok(Drain::ServerDown) => {
                    let p = pause;
                    pause = (pause * 2).min(self.retry_max);
                    Some(p)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox pass failed");
                    Some(self.interval)
                }
            };
            match wait {
                Some(p) => tokio::select! {
                    _ = tokio::time::sleep(p) => {}
                    _ = shutdown.changed() => return,
                },
                None => tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = shutdown.changed() => return,
                },
            }
        }
    }

    /// Sends everything due now.
    pub async fn drain(&self) -> anyhow::Result<Drain> {
        let mut sent = 0;
        loop {
            let batch = outbox::claim(&self.db, store::now(), LEASE_SECS, 20).await?;
            if batch.is_empty() {
                return Ok(Drain::Done(sent));
            }
            let mut rest = batch.into_iter();
            for m in rest.by_ref() {
                match self.deliver(m).await? {
                    Delivery::Sent => sent += 1,
                    Delivery::NotSent => {}
                    Delivery::ServerDown => {
                        // Hand the rest of the batch back untried.
                        let next = store::now() + self.retry_base.as_secs().max(1) as i64;
                        for other in rest {
                            outbox::release(&self.db, &other.id, next).await?;
                        }
                        return Ok(Drain::ServerDown);
                    }
                }
            }
        }
    }

    async fn deliver(&self, m: outbox::Claimed) -> anyhow::Result<Delivery> {
        let Some(to_addr) = m.to_addr.clone() else {
            outbox::mark_failed(&self.db, &m.id, "no_recipient").await?;
            return Ok(Delivery::NotSent);
        };
        let secret = match &m.sealed_secret {
            Some(s) => match self.keys.open(s) {
                Some(v) => Some(v),
                None => {
                    // Sealed under another PORTAL_SECRET_KEY: the code is lost;
                    // the customer can ask for a new one.
                    outbox::mark_failed(&self.db, &m.id, "secret_unreadable").await?;
                    return Ok(Delivery::NotSent);
                }
            },
            None => None,
        };
        let fill = |s: &str| match &secret {
            Some(v) => s.replace(super::SECRET_PLACEHOLDER, v),
            None => s.to_string(),
        };
        let (subject, text, html) = match &m.context {
            Some(context) => match super::render_queued(&self.tera, &m.template, context) {
                Ok(r) => (fill(&r.subject), fill(&r.text), fill(&r.html)),
                Err(e) => {
                    // Templates are built in and checked when the mail is
                    // queued: this is a bug, and retrying cannot fix it.
                    tracing::error!(template = %m.template, error = %e, "queued mail cannot be rendered");
                    outbox::mark_failed(&self.db, &m.id, "render_failed").await?;
                    return Ok(Delivery::NotSent);
                }
            },
            // Queued before mail was rendered at send time.
            None => (fill(&m.subject), fill(&m.body_text), fill(&m.body_html)),
        };
        let to: Mailbox = match to_addr.parse() {
            Ok(t) => t,
            Err(_) => {
                outbox::mark_failed(&self.db, &m.id, "bad_recipient").await?;
                return Ok(Delivery::NotSent);
            }
        };
        let domain = self.from.email.domain().to_string();
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.clone())
            // Stable per outbox row: if a crash ever causes a resend, mail
            // clients can recognise the duplicate.
            .message_id(Some(format!("<{}@{}>", m.id, domain)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.clone()),
                    ),
            )?;
        match self
            .transport
            .send(&m.id, msg, &to_addr, &subject, &text, &html)
            .await
        {
            Ok(()) => {
                outbox::mark_sent(&self.db, &m.id, store::now()).await?;
                self.metrics.mails_sent.inc();
                Ok(Delivery::Sent)
            }
            Err(SendError::Transient(why)) => {
                let exp = (m.attempts.max(1) - 1).min(16) as u32;
                let delay = self
                    .retry_base
                    .saturating_mul(2u32.saturating_pow(exp))
                    .min(self.retry_max);
                let next = store::now() + delay.as_secs().max(1) as i64;
                outbox::mark_retry(&self.db, &m.id, next, why).await?;
                self.metrics.mail_failures.inc();
                tracing::info!(
                    reason = why,
                    attempts = m.attempts,
                    "mail delivery deferred"
                );
                Ok(if why == "smtp_transient" {
                    Delivery::NotSent
                } else {
                    Delivery::ServerDown
                })
            }
            Err(SendError::Permanent(why)) => {
                outbox::mark_failed(&self.db, &m.id, why).await?;
                self.metrics.mail_failures.inc();
                tracing::warn!(reason = why, "mail refused permanently");
                Ok(Delivery::NotSent)
            }
        }
    }
}
