use chrono::{DateTime, Utc};
use tera::Context;

use super::{limits, WResult, WorkflowError};
use crate::{
    crypto,
    domain::{deadline, Email, Locale, RequestKind},
    mail,
    store::{
        self, audit, codes, requests,
        writer::{Deferred, Writer},
    },
    AppState,
};

pub struct Started {
    pub id: String,
}

/// Where a request came from: the portal, or staff entering one received by
/// phone or letter (EDPB 01/2022 §52).
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Portal,
    Api,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Api => "api",
        }
    }
}

/// The due date (and its last instant) of a month plus `extension_months`
/// counted from `clock_start`: receipt plus the exact time the code waited
/// (`received_at + paused_seconds`), as the customer is told at
/// verification. Everything that dates a request — intake, verification,
/// extensions, the register — counts through here, so they cannot differ
/// by a day.
pub fn month_due(state: &AppState, clock_start: i64, extension_months: u32) -> (String, i64) {
    let country = state.settings.company.country;
    let due = deadline::due_date(&deadline::DeadlineInput {
        country,
        received_at: DateTime::<Utc>::from_timestamp(clock_start, 0).unwrap_or_default(),
        paused: chrono::Duration::zero(),
        extension_months,
    });
    (
        due.to_string(),
        deadline::due_instant(country, due).timestamp(),
    )
}

/// Starts a request and emails a code. The answer is the same whether or
/// not the address has an account: nothing is looked up here.
pub async fn start(
    state: &AppState,
    kind: RequestKind,
    raw_email: &str,
    locale: Locale,
    channel: Channel,
) -> WResult<Started> {
    let email = Email::parse(raw_email).ok_or(WorkflowError::Invalid {
        field: "email",
        key: "errors.invalid_email",
    })?;
    if !kind.available() {
        return Err(WorkflowError::KindUnavailable);
    }
    let now = store::now();
    let email_hash = state.keys.lookup_hash(email.as_str());
    let id = crate::store::new_id();
    let (due_date, due_at) = month_due(state, now, 0);

    let prepared = prepare_code(state, &id, kind, &email, locale, "code")?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = IntakeJob {
        id: id.clone(),
        kind,
        locale,
        email: email.as_str().to_string(),
        email_hash,
        channel,
        received_at: now,
        due_date,
        due_at,
        prepared,
        reply,
    };
    state.intake.send(job).await?;
    answer
        .await
        .map_err(|_| anyhow::anyhow!("intake writer dropped the request"))??;
    state.mail_notify.notify_one();
    state.metrics.requests_created.inc();
    state.metrics.codes_sent.inc();
    Ok(Started { id })
}

/// A code and its mail, made before the transaction that stores them.
pub(crate) struct PreparedCode {
    code_hash: String,
    mail: mail::Prepared,
}

pub(crate) fn prepare_code(
    state: &AppState,
    request_id: &str,
    kind: RequestKind,
    email: &Email,
    locale: Locale,
    step: &str,
) -> WResult<PreparedCode> {
    let code = crypto::random_code(limits::CODE_DIGITS);
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("minutes", &(limits::CODE_TTL_SECS / 60));
    // The code is stored a moment later with the same lifetime; the mail
    // names the clock time so a mail read later still says whether it works.
    ctx.insert(
        "valid_until",
        &crate::i18n::clock(
            chrono::Utc::now().timestamp() + limits::CODE_TTL_SECS,
            state.settings.company.country.timezone(),
        ),
    );
    ctx.insert("action", &super::kind_action(state, locale, kind));
    ctx.insert(
        "kind_label",
        &crate::i18n::t(locale, &format!("kinds.{}.title", kind.as_str())),
    );
    // `step` is the page after /r/{id}/, or a whole path (a download link).
    let link = if step.starts_with('/') {
        format!("{}{}", state.settings.base_url, step)
    } else {
        format!(
            "{}/{}/r/{}/{}",
            state.settings.base_url,
            locale.as_str(),
            request_id,
            step
        )
    };
    ctx.insert("link", &link);
    let mail = mail::prepare(
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(request_id),
            to: email.as_str(),
            locale,
            template: "code",
            ctx,
            secret: Some(&code),
            forget_address: false,
        },
    )?;
    Ok(PreparedCode {
        code_hash: state.keys.code_hash(request_id, &code),
        mail,
    })
}

pub(crate) async fn store_code(
    conn: &mut store::Conn,
    request_id: &str,
    email_hash: &str,
    p: &PreparedCode,
    now: i64,
) -> WResult<()> {
    codes::insert(
        conn,
        &crate::store::new_id(),
        request_id,
        email_hash,
        &p.code_hash,
        now,
        now + limits::CODE_TTL_SECS,
    )
    .await?;
    mail::store(conn, &p.mail, now).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue_code(
    state: &AppState,
    conn: &mut store::Conn,
    request_id: &str,
    kind: RequestKind,
    email: &Email,
    email_hash: &str,
    locale: Locale,
    now: i64,
    step: &str,
) -> WResult<()> {
    let p = prepare_code(state, request_id, kind, email, locale, step)?;
    store_code(conn, request_id, email_hash, &p, now).await
}

/// A new request waiting to be written.
pub struct IntakeJob {
    id: String,
    kind: RequestKind,
    locale: Locale,
    email: String,
    email_hash: String,
    channel: Channel,
    received_at: i64,
    due_date: String,
    due_at: i64,
    prepared: PreparedCode,
    reply: tokio::sync::oneshot::Sender<WResult<()>>,
}

/// Writers on PostgreSQL. A batch holds the audit chain's lock only from
/// its audit rows to its commit, so two writers overlap the rest: the
/// single writer spent most of each batch waiting on round trips, with
/// PostgreSQL and the portal together using about one of the two cores.
const POSTGRES_WRITERS: usize = 2;

/// The intake writers' queues. An address always goes to the same writer,
/// so two batches counting one address's codes never run at once.
pub struct IntakeQueue {
    writers: Vec<tokio::sync::mpsc::Sender<IntakeJob>>,
}

impl IntakeQueue {
    async fn send(&self, job: IntakeJob) -> anyhow::Result<()> {
        // The lookup hash is a keyed hash in hex: its first digits spread
        // addresses evenly.
        let pick = u64::from_str_radix(job.email_hash.get(..8).unwrap_or("0"), 16).unwrap_or(0)
            as usize
            % self.writers.len();
        self.writers[pick]
            .send(job)
            .await
            .map_err(|_| anyhow::anyhow!("intake writer stopped"))
    }
}

/// Group commit for intake: requests that arrive while a commit is on its
/// way to disk are written together in the next transaction, so one flush
/// covers many of them. Every caller still hears only after the flush that
/// holds its request, so a 202 is never given for something not yet stored.
///
/// SQLite has one writer, as it allows only one at a time. While jobs keep
/// coming a writer keeps its connection; on SQLite the WAL is synced by the
/// flusher task while the next batch is written (see `store::writer`).
pub fn spawn_writers(db: store::Db, keys: std::sync::Arc<crate::crypto::Keys>) -> IntakeQueue {
    let deferred = Deferred::for_db(&db);
    let flusher = deferred.clone().map(spawn_flusher);
    let n = match db.backend {
        store::Backend::Sqlite => 1,
        store::Backend::Postgres => POSTGRES_WRITERS,
    };
    IntakeQueue {
        writers: (0..n)
            .map(|_| spawn_writer(db.clone(), keys.clone(), deferred.clone(), flusher.clone()))
            .collect(),
    }
}

fn spawn_writer(
    db: store::Db,
    keys: std::sync::Arc<crate::crypto::Keys>,
    deferred: Option<Deferred>,
    flusher: Option<tokio::sync::mpsc::UnboundedSender<Committed>>,
) -> tokio::sync::mpsc::Sender<IntakeJob> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<IntakeJob>(1024);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            let mut writer = match Writer::acquire(&db, deferred.as_ref()).await {
                Ok(w) => w,
                Err(e) => {
                    let batch = collect(next.take(), &mut rx);
                    let failed = fail_all(batch.len(), &e);
                    reply(batch, failed);
                    continue;
                }
            };
            while next.is_some() {
                let batch = collect(next.take(), &mut rx);
                let outcome = write_batch(writer.conn(), keys.audit(), &batch).await;
                // The whole batch failed (the database, not a limit): give
                // the connection back, so the pool tests it and replaces
                // it if it is broken, rather than failing the next batches
                // on it too.
                let failed = outcome.iter().all(|r| {
                    matches!(
                        r,
                        Err(WorkflowError::Internal(_) | WorkflowError::Unavailable)
                    )
                });
                match &flusher {
                    Some(f) => {
                        if let Err(tokio::sync::mpsc::error::SendError((batch, _))) =
                            f.send((batch, outcome))
                        {
                            let failed =
                                fail_all(batch.len(), anyhow::anyhow!("flusher stopped").as_ref());
                            reply(batch, failed);
                        }
                    }
                    None => reply(batch, outcome),
                }
                writer.after_commit().await;
                if !failed && !writer.should_yield() {
                    next = rx.try_recv().ok();
                }
            }
            writer.release().await;
        }
    });
    tx
}

/// `first` and whatever else is already waiting, up to 256 jobs.
fn collect(
    first: Option<IntakeJob>,
    rx: &mut tokio::sync::mpsc::Receiver<IntakeJob>,
) -> Vec<IntakeJob> {
    let mut batch: Vec<IntakeJob> = first.into_iter().collect();
    while batch.len() < 256 {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

fn reply(batch: Vec<IntakeJob>, outcome: Vec<WResult<()>>) {
    for (job, result) in batch.into_iter().zip(outcome) {
        let _ = job.reply.send(result);
    }
}

/// One answer per job of a batch that failed as a whole. A database that
/// is away (refused connections, a full disk) asks the customers to try
/// again later instead of reporting a fault; logged once per batch.
fn fail_all(n: usize, e: &(dyn std::error::Error + 'static)) -> Vec<WResult<()>> {
    let unavailable = store::is_unavailable(e);
    if unavailable {
        tracing::warn!(error = %e, jobs = n, "intake write failed: database unavailable");
    }
    (0..n)
        .map(|_| {
            Err(if unavailable {
                WorkflowError::Unavailable
            } else {
                WorkflowError::Internal(anyhow::anyhow!("intake write failed: {e}"))
            })
        })
        .collect()
}

type Committed = (Vec<IntakeJob>, Vec<WResult<()>>);

/// A task that flushes and then answers every batch committed before the
/// flush began. Batches that pile up during one flush share the next. If
/// the flush fails, nobody is told their request was stored.
fn spawn_flusher(deferred: Deferred) -> tokio::sync::mpsc::UnboundedSender<Committed> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Committed>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut done = vec![first];
            while let Ok(more) = rx.try_recv() {
                done.push(more);
            }
            let flushed = deferred.flush().await;
            if let Err(e) = &flushed {
                tracing::error!(error = %e, "flushing intake commits failed");
            }
            for (batch, outcome) in done {
                match &flushed {
                    Ok(()) => reply(batch, outcome),
                    Err(e) => {
                        let failed = fail_all(batch.len(), e.as_ref());
                        reply(batch, failed)
                    }
                }
            }
        }
    });
    tx
}

/// The whole batch in one transaction and a few multi-row statements per
/// table, so the writer's time per request is mostly the database's own work.
/// One result per job: a refusal (too many codes for the address) affects
/// that job alone; a database error fails the batch, and nobody gets a 202.
async fn write_batch(
    conn: &mut store::Conn,
    key: &crate::crypto::AuditKey,
    batch: &[IntakeJob],
) -> Vec<WResult<()>> {
    let mut tx = match sqlx::Connection::begin(&mut *conn).await {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch.len(), &e),
    };
    let results = match write_all(&mut tx, key, batch).await {
        Ok(r) => r,
        Err(e) => return fail_all(batch.len(), e.as_ref()),
    };
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => fail_all(batch.len(), &e),
    }
}

async fn write_all(
    tx: &mut store::Conn,
    key: &crate::crypto::AuditKey,
    batch: &[IntakeJob],
) -> anyhow::Result<Vec<WResult<()>>> {
    // Within one instance an address always goes to the same writer
    // (`IntakeQueue`); across instances the address locks below keep two
    // batches from counting one address at once. The audit chain's lock is taken last, by `record_many`,
    // so another writer's batch can be written up to its audit rows
    // while this one holds it.
    // Codes already sent per address, counted inside the transaction; the
    // batch's own requests are added as they are accepted, so several
    // requests for one address in one batch see each other.
    let since = batch.iter().map(|j| j.received_at).min().unwrap_or(0) - 3600;
    let hashes: Vec<&str> = batch.iter().map(|j| j.email_hash.as_str()).collect();
    // Other instances write to the same database: their batches for these
    // addresses wait until this one commits.
    store::lock_addresses(tx, &hashes).await?;
    let mut sent = codes::sent_to_addresses_since(tx, &hashes, since).await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut accepted = Vec::with_capacity(batch.len());
    for job in batch {
        let n = sent.entry(job.email_hash.clone()).or_insert(0);
        if *n >= limits::CODES_PER_ADDRESS_HOUR {
            results.push(Err(WorkflowError::RateLimited { retry_after: 3600 }));
        } else {
            *n += 1;
            results.push(Ok(()));
            accepted.push(job);
        }
    }
    let new_requests: Vec<_> = accepted
        .iter()
        .map(|job| requests::NewRequest {
            id: &job.id,
            kind: job.kind,
            locale: job.locale.as_str(),
            email: &job.email,
            email_hash: &job.email_hash,
            channel: job.channel.as_str(),
            received_at: job.received_at,
            due_date: &job.due_date,
            due_at: job.due_at,
        })
        .collect();
    requests::insert_many(tx, &new_requests).await?;
    let new_codes: Vec<_> = accepted
        .iter()
        .map(|job| codes::NewCode {
            id: crate::store::new_id(),
            request_id: &job.id,
            email_hash: &job.email_hash,
            code_hash: &job.prepared.code_hash,
            created_at: job.received_at,
            expires_at: job.received_at + limits::CODE_TTL_SECS,
        })
        .collect();
    codes::insert_first_many(tx, &new_codes).await?;
    let mails: Vec<_> = accepted
        .iter()
        .map(|j| j.prepared.mail.as_new_mail())
        .collect();
    store::outbox::insert_many(tx, &mails, store::now()).await?;
    let events: Vec<_> = accepted
        .iter()
        .map(|job| {
            (
                job.received_at,
                audit::Event {
                    request_id: Some(&job.id),
                    actor: "customer",
                    action: "request_created",
                    from_status: None,
                    to_status: Some("awaiting_verification"),
                    detail: serde_json::json!({"kind": job.kind.as_str(), "locale": job.locale.as_str(), "channel": job.channel.as_str()}),
                },
            )
        })
        .collect();
    audit::record_many(tx, key, &events).await?;
    Ok(results)
}

/// A request whose identity was proven another way than the emailed code
/// (authenticator + postcode + house number): created and verified in one
/// transaction. Returns (id, bearer token).
pub async fn start_verified(
    state: &AppState,
    kind: RequestKind,
    email: &Email,
    locale: Locale,
    method: &str,
) -> WResult<(String, String)> {
    let now = store::now();
    let id = crate::store::new_id();
    let email_hash = state.keys.lookup_hash(email.as_str());
    let (due_date, due_at) = month_due(state, now, 0);
    let token = crypto::random_token();
    let mut tx = state.db.begin().await?;
    requests::insert(
        &mut tx,
        &requests::NewRequest {
            id: &id,
            kind,
            locale: locale.as_str(),
            email: email.as_str(),
            email_hash: &email_hash,
            channel: Channel::Portal.as_str(),
            received_at: now,
            due_date: &due_date,
            due_at,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),now,
        audit::Event {
            request_id: Some(&id),
            actor: "customer",
            action: "request_created",
            from_status: None,
            to_status: Some("awaiting_verification"),
            detail: serde_json::json!({"kind": kind.as_str(), "locale": locale.as_str(), "channel": "portal"}),
        },
    )
    .await?;
    requests::set_status(
        &mut tx,
        &id,
        crate::domain::Status::AwaitingVerification,
        crate::domain::Status::Verified,
        now,
    )
    .await?;
    requests::set_verified(
        &mut tx,
        &id,
        now,
        0,
        &due_date,
        due_at,
        &state.keys.token_hash(&token),
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(&id),
            actor: "customer",
            action: "verified",
            from_status: Some("awaiting_verification"),
            to_status: Some("verified"),
            detail: serde_json::json!({"method": method}),
        },
    )
    .await?;
    tx.commit().await?;
    state.metrics.requests_created.inc();
    state.metrics.verification("ok");
    Ok((id, token))
}
