//! Right of access and portability (Art. 15, 20): after the identity check
//! the archive is built by a stored job, encrypted at rest in the database,
//! and the customer gets a signed link valid 24 hours that needs a fresh
//! code unless the same browser just verified. Other systems become a staff
//! task.
//!
//! The job is stored with the step to `processing`, so a restart loses
//! nothing: a worker on any instance leases it ([`run_worker`]), builds the
//! archive into `export_chunks` under its lease, and hands it over with the
//! request's completion in one transaction. A lease that runs out (the
//! process died) lets the job be taken again; after [`MAX_ATTEMPTS`] failed
//! attempts the request goes to staff with the reason `export_failed`.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::Utc;
use tera::Context;
use tokio::sync::watch;

use super::{event, verification, WResult, WorkflowError};
use crate::{
    connector::{AccountRef, Connector},
    crypto,
    domain::{Email, Locale, RequestKind, Status},
    export, mail,
    store::{
        self, audit,
        exports::{self, Job},
        requests,
        requests::RequestRow,
    },
    AppState,
};

pub use store::exports::ExportRow;

pub const DOWNLOAD_TTL_SECS: i64 = 24 * 3600;
/// A worker holds a job this long without renewing; it renews every third
/// of it while it builds, so only a dead (or cut-off) worker loses a job.
pub const LEASE_SECS: i64 = 120;
/// Failed attempts (a lapsed lease counts) before staff take over.
pub const MAX_ATTEMPTS: i64 = 5;
/// Wait after the first failure, doubled after each further one, capped:
/// a connector that is down for a while is not hammered, and the last
/// attempt still comes within the hour.
const RETRY_BASE_SECS: i64 = 60;
const RETRY_MAX_SECS: i64 = 30 * 60;
/// What the API tells a client polling an archive that is being built.
pub const PROCESSING_RETRY_AFTER_SECS: u64 = 5;

/// Starts the export. Answers at once; a worker builds the archive.
pub async fn submit(state: Arc<AppState>, id: &str) -> WResult<RequestRow> {
    let req = verification::get(&state, id).await?;
    if req.kind() != RequestKind::Export {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    match req.status() {
        Status::Verified => {}
        Status::AwaitingVerification => return Err(WorkflowError::NotVerified),
        _ => return Ok(req),
    }
    let acc = match Email::parse(&req.email) {
        Some(e) => state.connector.find_account(&e).await?,
        None => None,
    };
    let now = store::now();
    let locale = req.locale();
    let Some(acc) = acc else {
        // The customer proved the address, so saying we hold nothing is safe.
        let mut tx = state.db.begin().await?;
        match requests::set_status(&mut tx, id, Status::Verified, Status::Completed, now).await {
            Ok(()) => {}
            Err(requests::TransitionError::Raced) => return verification::get(&state, id).await,
            Err(e) => return Err(e.into()),
        }
        requests::set_data(&mut tx, id, &req.data(), &[], Some("no_data")).await?;
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            event(
                id,
                "customer",
                "export_no_data",
                Some(Status::Verified),
                Some(Status::Completed),
                serde_json::json!({}),
            ),
        )
        .await?;
        let mut ctx = Context::new();
        ctx.insert("company", &state.settings.company.name);
        ctx.insert("reference", &super::reference(id));
        mail::enqueue(
            &mut tx,
            &state.tera,
            &state.keys,
            mail::Outgoing {
                request_id: Some(id),
                to: &req.email,
                locale,
                template: "export_no_data",
                ctx,
                secret: None,
                forget_address: false,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        state.mail_notify.notify_one();
        return verification::get(&state, id).await;
    };

    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Verified, Status::Processing, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return verification::get(&state, id).await,
        Err(e) => return Err(e.into()),
    }
    exports::insert_job(&mut tx, id, &acc.id, now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            "customer",
            "export_started",
            Some(Status::Verified),
            Some(Status::Processing),
            serde_json::json!({}),
        ),
    )
    .await?;
    super::other_systems_task(&state, &mut tx, id, "export_other_systems", req.due_at, now).await?;
    tx.commit().await?;
    state.export_notify.notify_one();
    verification::get(&state, id).await
}

/// The export worker: started with the server, woken on submit, and
/// polling for retries and lapsed leases otherwise.
pub async fn run_worker(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    match adopt_unjobbed(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            requests = n,
            "export jobs stored for exports started earlier"
        ),
        Err(e) => tracing::warn!(error = %e, "could not look for exports without a job"),
    }
    loop {
        match work_due(&state, &mut shutdown).await {
            Ok(Pass::Stopped) => return,
            Ok(Pass::Idle) => {}
            Err(e) => tracing::warn!(error = %e, "export pass failed"),
        }
        tokio::select! {
            _ = state.export_notify.notified() => {}
            _ = tokio::time::sleep(state.settings.worker_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

enum Pass {
    Idle,
    Stopped,
}

/// Runs every job due now, one at a time (an archive build takes a CPU;
/// other instances take other jobs).
async fn work_due(state: &Arc<AppState>, shutdown: &mut watch::Receiver<bool>) -> WResult<Pass> {
    loop {
        if *shutdown.borrow() {
            return Ok(Pass::Stopped);
        }
        let Some(job) = exports::claim_job(&state.db, store::now(), LEASE_SECS).await? else {
            return Ok(Pass::Idle);
        };
        let stop = Arc::new(AtomicBool::new(false));
        tokio::select! {
            r = run_job(state, &job, stop.clone()) => r?,
            _ = shutdown.changed() => {
                // Leave the job for the next start (or another instance)
                // at once, rather than after the lease.
                stop.store(true, Ordering::Relaxed);
                exports::release(&state.db, &job.request_id, &job.lease, store::now()).await?;
                return Ok(Pass::Stopped);
            }
        }
    }
}

/// One attempt at a leased job.
async fn run_job(state: &Arc<AppState>, job: &Job, stop: Arc<AtomicBool>) -> WResult<()> {
    let req = requests::get(&state.db, &job.request_id).await?;
    let Some(req) = req.filter(|r| r.status() == Status::Processing) else {
        // The request ended meanwhile (staff closed it, or it was purged).
        let mut conn = state.db.write().acquire().await?;
        exports::end_job(&mut conn, &job.request_id, &job.lease).await?;
        return Ok(());
    };
    let acc = AccountRef {
        id: job.account_id.clone(),
    };
    let built = holding_lease(
        state,
        job,
        &stop,
        build_archive(state, &req, acc, &job.lease, stop.clone()),
    )
    .await;
    let handed_over = match built {
        Ok(size) => deliver(state, &req, job, size).await?,
        // Taken over or shutting down: not a failure of the export.
        Err(_) if stop.load(Ordering::Relaxed) => false,
        Err(e) => {
            // Connector and storage errors name systems and tables, not
            // the customer's data.
            tracing::warn!(error = %e, attempt = job.attempts, "export attempt failed");
            discard(state, &job.lease).await?;
            return failed(state, job).await;
        }
    };
    if !handed_over {
        discard(state, &job.lease).await?;
    }
    Ok(())
}

/// Runs `build` while renewing the lease; a renewal that finds the job
/// taken over stops the build at its next chunk.
async fn holding_lease<T>(
    state: &AppState,
    job: &Job,
    stop: &AtomicBool,
    build: impl std::future::Future<Output = T>,
) -> T {
    let mut beat = tokio::time::interval(Duration::from_secs((LEASE_SECS / 3) as u64));
    beat.tick().await;
    tokio::pin!(build);
    loop {
        tokio::select! {
            r = &mut build => return r,
            _ = beat.tick() => {
                let until = store::now() + LEASE_SECS;
                match exports::renew(&state.db, &job.request_id, &job.lease, until).await {
                    Ok(true) => {}
                    Ok(false) => stop.store(true, Ordering::Relaxed),
                    // The next chunk write checks the lease again.
                    Err(e) => tracing::warn!(error = %e, "export lease renewal failed"),
                }
            }
        }
    }
}

/// Removes an attempt's chunks that will never be an archive.
async fn discard(state: &AppState, archive_id: &str) -> WResult<()> {
    let mut conn = state.db.write().acquire().await?;
    exports::delete_chunks(&mut conn, archive_id).await?;
    Ok(())
}

fn retry_delay(attempts: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 16) as u32;
    RETRY_BASE_SECS
        .saturating_mul(2_i64.pow(doublings))
        .min(RETRY_MAX_SECS)
}

/// A failed attempt: try again later, or after the last one hand the
/// request to staff.
async fn failed(state: &AppState, job: &Job) -> WResult<()> {
    let id = job.request_id.as_str();
    let now = store::now();
    let mut tx = state.db.begin().await?;
    if job.attempts < MAX_ATTEMPTS {
        let next_at = now + retry_delay(job.attempts);
        if !exports::retry_later(&mut tx, id, &job.lease, next_at, "build_failed").await? {
            return Ok(());
        }
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            event(
                id,
                "system",
                "export_retry",
                None,
                None,
                serde_json::json!({"attempt": job.attempts, "next_attempt_at": next_at}),
            ),
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    if !exports::end_job(&mut tx, id, &job.lease).await? {
        return Ok(());
    }
    escalate(&mut tx, state.keys.audit(), id, job.attempts, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Staff take over an export that cannot be built (visible in the queue
/// with the reason `export_failed`).
async fn escalate(
    tx: &mut store::Conn,
    key: &crate::crypto::AuditKey,
    id: &str,
    attempts: i64,
    now: i64,
) -> WResult<()> {
    let req = verification::load(tx, id).await?;
    requests::set_status(tx, id, Status::Processing, Status::Escalated, now).await?;
    requests::set_data(tx, id, &req.data(), &["export_failed"], None).await?;
    audit::record(
        tx,
        key,
        now,
        event(
            id,
            "system",
            "export_failed",
            Some(Status::Processing),
            Some(Status::Escalated),
            serde_json::json!({"attempts": attempts}),
        ),
    )
    .await?;
    Ok(())
}

/// Exports left in `processing` without a job — started by a version that
/// built archives in a task a restart lost — get a job now, or go to staff
/// when their account is gone.
async fn adopt_unjobbed(state: &AppState) -> WResult<usize> {
    let mut n = 0;
    for (id, email) in exports::unjobbed(&state.db, 500).await? {
        let acc = match Email::parse(&email) {
            Some(e) => state.connector.find_account(&e).await?,
            None => None,
        };
        let now = store::now();
        let mut tx = state.db.begin().await?;
        match acc {
            Some(acc) => {
                if !exports::insert_job(&mut tx, &id, &acc.id, now).await? {
                    continue;
                }
                audit::record(
                    &mut tx,
                    state.keys.audit(),
                    now,
                    event(
                        &id,
                        "system",
                        "export_resumed",
                        None,
                        None,
                        serde_json::json!({}),
                    ),
                )
                .await?;
            }
            None => escalate(&mut tx, state.keys.audit(), &id, 0, now).await?,
        }
        tx.commit().await?;
        n += 1;
    }
    if n > 0 {
        state.export_notify.notify_one();
    }
    Ok(n)
}

/// Reads the connector from the blocking builder thread.
struct ConnectorSource {
    handle: tokio::runtime::Handle,
    connector: Arc<dyn Connector>,
    acc: AccountRef,
}

impl ConnectorSource {
    fn builtin(&self) -> anyhow::Result<&crate::connector::builtin::BuiltinStore> {
        self.connector
            .as_builtin()
            .ok_or_else(|| anyhow::anyhow!("per-category pages need the built-in store"))
    }
}

impl export::Source for ConnectorSource {
    fn profile(&self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        self.handle
            .block_on(self.builtin()?.export_profile(&self.acc))
    }
    fn page(
        &self,
        category: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        self.handle.block_on(
            self.builtin()?
                .export_page(&self.acc, category, offset, limit),
        )
    }
}

/// Everything a company system returns for a subject, page by page, into
/// a spool (a few bytes a row in memory, however long the history).
async fn spool_primary(
    connector: &dyn Connector,
    acc: &AccountRef,
) -> anyhow::Result<export::Spooled> {
    let mut spool = export::Spool::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = connector.export_records(acc, cursor.as_deref()).await?;
        for (cat, data) in page.records {
            spool.push(&cat, data)?;
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return spool.finish(),
        }
    }
}

/// The other systems' data for the archive, each keyed by the address.
async fn spool_others(state: &AppState, email: &str) -> anyhow::Result<Vec<export::OtherSystem>> {
    use crate::connector::{
        http::{CallError, Subject},
        SecondaryKind,
    };
    let mut out = Vec::new();
    for s in &state.systems.secondaries {
        let SecondaryKind::Http(h) = &s.kind else {
            continue;
        };
        let subject = Subject::Email(email.to_string());
        let mut spool = export::Spool::default();
        let mut cursor: Option<String> = None;
        let mut unsupported = false;
        loop {
            match h.export_page(&subject, cursor.as_deref()).await {
                Ok(page) => {
                    for (cat, data) in page.records {
                        spool.push(&cat, data)?;
                    }
                    match page.next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                Err(CallError::Unsupported(_)) => {
                    unsupported = true;
                    break;
                }
                Err(e) => return Err(anyhow::anyhow!("{}: {e}", s.id)),
            }
        }
        out.push(export::OtherSystem {
            id: s.id.clone(),
            name: s.name.get(crate::domain::Locale::En).to_string(),
            data: spool.finish()?,
            unsupported,
        });
    }
    Ok(out)
}

/// Where archives built before migration 0012 lie (`storage = 'file'`).
fn legacy_path(state: &AppState, file_name: &str) -> PathBuf {
    state.settings.export_dir.join(file_name)
}

/// Builds the encrypted archive for an account into the chunks of the
/// attempt holding `lease`; returns its size in bytes. `stop` ends it early
/// (lease lost, shutdown).
pub async fn build_archive(
    state: &Arc<AppState>,
    req: &RequestRow,
    acc: AccountRef,
    lease: &str,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let key = state.keys.archive_key(&req.id);
    let handle = tokio::runtime::Handle::current();
    let src = ConnectorSource {
        handle: handle.clone(),
        connector: state.connector.clone(),
        acc,
    };
    let sink = export::chunks::ChunkSink::new(
        handle,
        state.db.clone(),
        req.id.clone(),
        lease.to_string(),
        stop,
    );
    let st = state.clone();
    let locale = req.locale();
    let reference = super::reference(&req.id);
    // The company's systems are read first (each page as it comes, into a
    // deflated spool); the built-in store is read while the zip is written.
    let spooled = match state.connector.as_builtin() {
        Some(_) => None,
        None => Some(spool_primary(state.connector.as_ref(), &src.acc).await?),
    };
    let mut others = spool_others(state, &req.email).await?;
    for o in &mut others {
        o.name = state.systems.name(&o.id, locale);
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let writer = export::crypt::EncryptingWriter::new(sink, &key)?;
        let meta = export::Meta {
            locale,
            company: &st.settings.company,
            reference: &reference,
            generated_at: Utc::now(),
            others: &others,
        };
        let source: &dyn export::Source = match &spooled {
            Some(s) => s,
            None => &src,
        };
        let (sink, size) = export::build(writer, source, &meta)?.finish()?;
        sink.close()?;
        Ok(size)
    })
    .await?
}

/// Hands the built archive over: the job ends, the archive is recorded, the
/// request completes and the link is mailed, in one transaction, only if
/// this attempt still holds the job.
async fn deliver(state: &AppState, req: &RequestRow, job: &Job, size: u64) -> WResult<bool> {
    let id = req.id.as_str();
    let now = store::now();
    let expires_at = now + DOWNLOAD_TTL_SECS;
    let locale = req.locale();
    let mut tx = state.db.begin().await?;
    if !exports::end_job(&mut tx, id, &job.lease).await? {
        return Ok(false);
    }
    exports::insert_archive(&mut tx, id, &job.lease, size as i64, now, expires_at).await?;
    requests::set_status(&mut tx, id, Status::Processing, Status::Completed, now).await?;
    let mut data = req.data();
    data["download_expires_at"] = serde_json::json!(expires_at);
    requests::set_data(&mut tx, id, &data, &[], Some("archive_ready")).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            "system",
            "export_ready",
            Some(Status::Processing),
            Some(Status::Completed),
            serde_json::json!({"bytes": size, "attempt": job.attempts}),
        ),
    )
    .await?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("link", &download_url(state, id, locale, expires_at));
    ctx.insert(
        "expires",
        &crate::i18n::long_datetime(
            locale,
            expires_at,
            state.settings.company.country.timezone(),
        ),
    );
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "export_ready",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(true)
}

pub fn download_path(state: &AppState, id: &str, locale: Locale, expires_at: i64) -> String {
    format!(
        "/{}/download/{}?exp={}&sig={}",
        locale.as_str(),
        id,
        expires_at,
        state.keys.link_signature(id, expires_at)
    )
}

pub fn download_url(state: &AppState, id: &str, locale: Locale, expires_at: i64) -> String {
    format!(
        "{}{}",
        state.settings.base_url,
        download_path(state, id, locale, expires_at)
    )
}

/// A link is good when its signature is ours and it has not expired.
pub fn link_valid(state: &AppState, id: &str, exp: i64, sig: &str) -> bool {
    crypto::ct_eq(&state.keys.link_signature(id, exp), sig) && exp > store::now()
}

/// The archive while it may still be downloaded. While it is being built
/// the answer is "still being prepared", never "expired"; a request that
/// never had one (no data held, handed to staff) has none to find.
pub async fn available(state: &AppState, id: &str) -> WResult<ExportRow> {
    match exports::get(&state.db, id).await? {
        Some(r) if r.deleted_at.is_none() && r.expires_at > store::now() => Ok(r),
        Some(_) => Err(WorkflowError::DownloadExpired),
        None => match verification::get(state, id).await?.status() {
            Status::Processing => Err(WorkflowError::ExportProcessing {
                retry_after: PROCESSING_RETRY_AFTER_SECS,
            }),
            _ => Err(WorkflowError::NotFound),
        },
    }
}

/// Decrypts the archive into a stream of chunks for the HTTP response,
/// reading one stored chunk at a time.
pub fn open_stream(
    state: &AppState,
    id: &str,
    row: &ExportRow,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let key = state.keys.archive_key(id);
    let source = if row.in_database() {
        Ok(export::chunks::ChunkReader::new(
            tokio::runtime::Handle::current(),
            state.db.clone(),
            row.file_name.clone(),
        ))
    } else {
        Err(legacy_path(state, &row.file_name))
    };
    tokio::task::spawn_blocking(move || {
        let send = |chunk| {
            tx.blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::other("client went away"))
        };
        let res = match source {
            Ok(reader) => export::crypt::decrypt(reader, &key, send),
            Err(path) => std::fs::File::open(&path)
                .and_then(|f| export::crypt::decrypt(std::io::BufReader::new(f), &key, send)),
        };
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

pub async fn record_download(state: &AppState, id: &str, channel: &str) -> WResult<()> {
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        store::now(),
        event(
            id,
            "customer",
            "archive_downloaded",
            None,
            None,
            serde_json::json!({"via": channel}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A fresh code for opening the link in a browser that has not verified.
pub async fn send_download_code(
    state: &AppState,
    id: &str,
    locale: Locale,
    path: &str,
) -> WResult<()> {
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = verification::load(&mut tx, id).await?;
    if let Some(last) = store::codes::last_active_for_request(&mut tx, id, now).await? {
        if last + super::limits::RESEND_COOLDOWN_SECS > now {
            // A usable code just went out (a reload of the link): the form is enough.
            return Ok(());
        }
    }
    let email = Email::parse(&req.email).ok_or(WorkflowError::DownloadExpired)?;
    if store::codes::sent_to_address_since(&mut tx, &req.email_hash, now - 3600).await?
        >= super::limits::CODES_PER_ADDRESS_HOUR
    {
        return Err(WorkflowError::RateLimited { retry_after: 3600 });
    }
    super::intake::issue_code(
        state,
        &mut tx,
        id,
        RequestKind::Export,
        &email,
        &req.email_hash,
        locale,
        now,
        path,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(())
}

pub async fn check_download_code(state: &AppState, id: &str, raw_code: &str) -> WResult<()> {
    let code = verification::clean_code(raw_code);
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = verification::load(&mut tx, id).await?;
    if let verification::Attempt::Wrong(e) =
        verification::attempt(state, &mut tx, id, &req.email_hash, &code, now).await?
    {
        tx.commit().await?;
        return Err(e);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            "customer",
            "download_verified",
            None,
            None,
            serde_json::json!({"method": "email_code"}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes archives whose link has expired (run by the sweeper), and the
/// chunks of attempts that died before they could hand theirs over.
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let now = store::now();
    let mut deleted = 0;
    for row in exports::expired(&state.db, now, 200).await? {
        if !row.in_database() {
            match std::fs::remove_file(legacy_path(state, &row.file_name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let id = row.request_id.as_str();
        let mut tx = state.db.begin().await?;
        // Only the run that marks it records it.
        if !exports::mark_deleted(&mut tx, id, now).await? {
            continue;
        }
        if row.in_database() {
            exports::delete_chunks(&mut tx, &row.file_name).await?;
        }
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            event(
                id,
                "system",
                "archive_deleted",
                None,
                None,
                serde_json::json!({"reason": "download_expired"}),
            ),
        )
        .await?;
        tx.commit().await?;
        deleted += 1;
    }
    exports::delete_orphan_chunks(&state.db).await?;
    Ok(deleted)
}
