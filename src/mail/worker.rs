//! Delivers the outbox. Survives restarts (state lives in the table), backs
//! off exponentially, and once the server accepted a mail it is marked sent
//! before anything else happens, so it is not sent again.
//!
//! Mail always moves: every send is bounded (see `transport::Smtp`), new
//! mail wakes a worker in backoff, code mails stop once their code expired,
//! and mail the server refuses for good is held for the operator, not lost.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    Message,
};
use tokio::sync::{watch, Notify};

use super::{
    transport::{SendError, Transport},
    Timing,
};
use crate::{
    crypto::Keys,
    metrics::Metrics,
    store::{self, outbox, outbox::Unsent, Db},
    workflow::limits::CODE_TTL_SECS,
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
    /// Caps the worker's pause while the server is down and the backoff of
    /// code mails.
    pub retry_max: Duration,
    pub interval: Duration,
    pub timing: Timing,
}

const BATCH: i64 = 20;

/// After SIGTERM the mail in flight may take this much longer (under the
/// 10 s a stop may take), then it is left queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Deferral reasons that say the server was not there, not that it
/// turned this mail away: such mail is due again as soon as a send works.
const UNREACHABLE: [&str; 3] = ["smtp_timeout", "smtp_unreachable", "smtp_tls"];

pub enum Drain {
    Done(usize),
    /// The server could not be reached; the pass stopped early.
    ServerDown,
    /// Shutdown: what was not sent is left queued.
    Stopped,
}

enum Delivery {
    Sent,
    NotSent,
    ServerDown,
    Stopped,
}

impl Worker {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.on_start().await;
        let mut pause = self.retry_base;
        let mut server_down = false;
        let mut held_requeued = Instant::now();
        loop {
            if held_requeued.elapsed() >= self.timing.held_retry {
                self.requeue_held().await;
                held_requeued = Instant::now();
            }
            let pass = self.drain(&shutdown).await;
            self.observe_queue().await;
            let backoff = match pass {
                Ok(Drain::Stopped) => return,
                Ok(Drain::Done(sent)) => {
                    pause = self.retry_base;
                    if server_down && sent > 0 {
                        server_down = false;
                        match outbox::retry_unreachable_now(&self.db, store::now(), &UNREACHABLE)
                            .await
                        {
                            Ok(n) if n > 0 => continue,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "outbox reschedule failed"),
                        }
                    }
                    None
                }
                Ok(Drain::ServerDown) => {
                    server_down = true;
                    let p = pause;
                    pause = (pause * 2).min(self.retry_max);
                    Some(p)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox pass failed");
                    Some(self.interval)
                }
            };
            let wait = backoff.unwrap_or(self.interval);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.notify.notified() => {
                    // New mail ends a backoff: a fresh code must not wait out
                    // a pause earned by older mail. A short pause remains so
                    // a burst of requests against a dead server costs one
                    // attempt per `retry_base`, not one per request.
                    if backoff.is_some() {
                        tokio::select! {
                            _ = tokio::time::sleep(self.retry_base.min(wait)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Held mail gets another chance under a configuration that may have
    /// been fixed; the last-success gauge starts from what the store knows.
    async fn on_start(&self) {
        self.requeue_held().await;
        if let Ok(Some(at)) = outbox::last_sent_at(&self.db).await {
            self.metrics.mail_last_success.set(at);
        }
        self.observe_queue().await;
    }

    async fn requeue_held(&self) {
        match outbox::requeue_held(&self.db, store::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(mails = n, "held mail queued again"),
            Err(e) => tracing::warn!(error = %e, "requeueing held mail failed"),
        }
    }

    async fn observe_queue(&self) {
        if let Ok((oldest, held)) = outbox::queue_health(&self.db).await {
            let age = oldest.map_or(0, |at| (store::now() - at).max(0));
            self.metrics.mail_oldest_queued_age.set(age);
            self.metrics.mail_held.set(held);
        }
    }

    /// Seconds a lease lasts: past the bounded send, whatever is configured,
    /// plus one for the whole-second clock.
    fn lease_secs(&self) -> i64 {
        let lease = self
            .timing
            .lease
            .max(self.timing.send_timeout + Duration::from_secs(2));
        lease.as_secs_f64().ceil() as i64 + 1
    }

    /// Sends everything due now, until shutdown is asked for.
    pub async fn drain(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Drain> {
        let mut sent = 0;
        loop {
            if *shutdown.borrow() {
                return Ok(Drain::Stopped);
            }
            let token = store::new_id();
            let batch =
                outbox::claim(&self.db, &token, store::now(), self.lease_secs(), BATCH).await?;
            if batch.is_empty() {
                return Ok(Drain::Done(sent));
            }
            let mut rest = batch.into_iter();
            while let Some(m) = rest.next() {
                let stopping = *shutdown.borrow();
                let outcome = if stopping {
                    outbox::release(&self.db, &m.id, &token, store::now()).await?;
                    Delivery::Stopped
                } else {
                    self.deliver(&token, m, shutdown).await?
                };
                let (next, result) = match outcome {
                    Delivery::Sent => {
                        sent += 1;
                        continue;
                    }
                    Delivery::NotSent => continue,
                    Delivery::ServerDown => (
                        store::now() + self.retry_base.as_secs().max(1) as i64,
                        Drain::ServerDown,
                    ),
                    // Due at once for whichever worker runs next.
                    Delivery::Stopped => (store::now(), Drain::Stopped),
                };
                // Hand the rest of the batch back untried.
                for other in rest {
                    outbox::release(&self.db, &other.id, &token, next).await?;
                }
                return Ok(result);
            }
        }
    }

    async fn unsent(
        &self,
        token: &str,
        m: &outbox::Claimed,
        how: Unsent,
        why: &str,
    ) -> anyhow::Result<()> {
        outbox::mark_unsent(
            &self.db,
            self.keys.audit(),
            &m.id,
            token,
            how,
            why,
            store::now(),
        )
        .await?;
        Ok(())
    }

    async fn deliver(
        &self,
        token: &str,
        m: outbox::Claimed,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<Delivery> {
        // Code mails carry the sealed code; once it expired the page tells
        // the customer to ask for a new one, and this one helps nobody.
        let code_expires = m
            .sealed_secret
            .as_ref()
            .map(|_| m.created_at + CODE_TTL_SECS);
        if code_expires.is_some_and(|at| store::now() >= at) {
            self.unsent(token, &m, Unsent::Expired, "code_expired")
                .await?;
            tracing::info!(template = %m.template, "code mail expired before it could be sent");
            return Ok(Delivery::NotSent);
        }
        let Some(to_addr) = m.to_addr.clone() else {
            self.unsent(token, &m, Unsent::Failed, "no_recipient")
                .await?;
            return Ok(Delivery::NotSent);
        };
        let secret = match &m.sealed_secret {
            Some(s) => match self.keys.open(s) {
                Some(v) => Some(v),
                None => {
                    // Sealed under another PORTAL_SECRET_KEY: the code is lost;
                    // the customer can ask for a new one.
                    self.unsent(token, &m, Unsent::Failed, "secret_unreadable")
                        .await?;
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
                    self.unsent(token, &m, Unsent::Failed, "render_failed")
                        .await?;
                    return Ok(Delivery::NotSent);
                }
            },
            // Queued before mail was rendered at send time.
            None => (fill(&m.subject), fill(&m.body_text), fill(&m.body_html)),
        };
        let to: Mailbox = match to_addr.parse() {
            Ok(t) => t,
            Err(_) => {
                self.unsent(token, &m, Unsent::Failed, "bad_recipient")
                    .await?;
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
        // Renewed right before the send so the lease outlasts it; if
        // another worker took the mail over meanwhile, it is theirs to send.
        let until = store::now() + self.lease_secs();
        if !outbox::renew(&self.db, &m.id, token, until).await? {
            tracing::debug!("mail lease taken over by another worker");
            return Ok(Delivery::NotSent);
        }
        let send = self
            .transport
            .send(&m.id, msg, &to_addr, &subject, &text, &html);
        tokio::pin!(send);
        let mut stop = shutdown.clone();
        let result = tokio::select! {
            r = &mut send => r,
            _ = async { drop(stop.wait_for(|s| *s).await) } => match tokio::time::timeout(SHUTDOWN_GRACE, &mut send).await {
                Ok(r) => r,
                Err(_) => {
                    outbox::release(&self.db, &m.id, token, store::now()).await?;
                    tracing::warn!("shutdown: mail in flight left queued");
                    return Ok(Delivery::Stopped);
                }
            },
        };
        let now = store::now();
        match result {
            Ok(()) => {
                if !outbox::mark_sent(&self.db, &m.id, token, now).await? {
                    // Cannot happen while sends stay under the lease; if it
                    // does, the other worker may send it once more.
                    tracing::warn!("mail sent after its lease was taken over");
                }
                self.metrics.mails_sent.inc();
                self.metrics.mail_last_success.set(now);
                Ok(Delivery::Sent)
            }
            Err(SendError::Transient(why)) | Err(SendError::Unreachable(why)) => {
                self.metrics.mail_failures.inc();
                let unreachable = matches!(result, Err(SendError::Unreachable(_)));
                let exp = (m.attempts.max(1) - 1).min(16) as u32;
                let cap = match code_expires {
                    Some(_) => self.retry_max,
                    None => self.timing.retry_max_other,
                };
                let delay = self
                    .retry_base
                    .saturating_mul(2u32.saturating_pow(exp))
                    .min(cap);
                let next = now + delay.as_secs().max(1) as i64;
                if unreachable {
                    tracing::warn!(
                        reason = why,
                        attempts = m.attempts,
                        "mail server unreachable; mail deferred"
                    );
                } else {
                    tracing::info!(
                        reason = why,
                        attempts = m.attempts,
                        "mail delivery deferred"
                    );
                }
                let given_up = now - m.created_at >= self.timing.give_up_after.as_secs() as i64;
                if code_expires.is_some_and(|at| next >= at) {
                    self.unsent(token, &m, Unsent::Expired, "code_expired")
                        .await?;
                } else if code_expires.is_none() && given_up {
                    self.unsent(token, &m, Unsent::Held, why).await?;
                    tracing::warn!(reason = why, template = %m.template, "mail undelivered for too long; held for the operator");
                } else {
                    outbox::mark_retry(&self.db, &m.id, token, next, why).await?;
                }
                Ok(if unreachable {
                    Delivery::ServerDown
                } else {
                    Delivery::NotSent
                })
            }
            Err(SendError::Permanent(why)) => {
                self.metrics.mail_failures.inc();
                self.unsent(token, &m, Unsent::Held, why).await?;
                tracing::warn!(
                    reason = why,
                    template = %m.template,
                    "mail refused for good by the server; held for the operator"
                );
                Ok(Delivery::NotSent)
            }
        }
    }
}
