//! Right of access and portability (Art. 15, 20): after the identity check
//! the archive is built in the background, encrypted at rest, and the
//! customer gets a signed link valid 24 hours that needs a fresh code unless
//! the same browser just verified. Other systems become a staff task.

use std::{path::PathBuf, sync::Arc};

use chrono::Utc;
use tera::Context;

use super::{event, verification, WResult, WorkflowError};
use crate::{
    connector::{AccountRef, Connector},
    crypto,
    domain::{Email, Locale, RequestKind, Status},
    export, mail,
    store::{self, audit, requests, requests::RequestRow},
    AppState,
};

pub const DOWNLOAD_TTL_SECS: i64 = 24 * 3600;

/// Starts the export. Answers at once; the archive is built in the background.
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
    audit::record(
        &mut tx,
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
    let row = verification::get(&state, id).await?;
    let bg = state.clone();
    let id_owned = id.to_string();
    tokio::spawn(async move {
        if let Err(e) = build_and_deliver(bg.clone(), &id_owned, acc).await {
            tracing::error!(error = %e, "export failed; handing the request to staff");
            let _ = fail(&bg, &id_owned).await;
        }
    });
    Ok(row)
}

async fn fail(state: &AppState, id: &str) -> WResult<()> {
    let now = store::now();
    let req = verification::get(state, id).await?;
    let mut tx = state.db.begin().await?;
    requests::set_status(&mut tx, id, Status::Processing, Status::Escalated, now).await?;
    requests::set_data(&mut tx, id, &req.data(), &["export_failed"], None).await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "system",
            "export_failed",
            Some(Status::Processing),
            Some(Status::Escalated),
            serde_json::json!({}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Reads the connector from the blocking builder thread.
struct ConnectorSource {
    handle: tokio::runtime::Handle,
    connector: Arc<dyn Connector>,
    acc: AccountRef,
}

impl export::Source for ConnectorSource {
    fn profile(&self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        self.handle
            .block_on(self.connector.export_profile(&self.acc))
    }
    fn page(
        &self,
        category: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        self.handle.block_on(
            self.connector
                .export_page(&self.acc, category, offset, limit),
        )
    }
}

pub fn archive_path(state: &AppState, file_name: &str) -> PathBuf {
    state.settings.export_dir.join(file_name)
}

/// Builds the encrypted archive for an account; returns its size in bytes.
pub async fn build_archive(
    state: &Arc<AppState>,
    req: &RequestRow,
    acc: AccountRef,
    file_name: &str,
) -> anyhow::Result<u64> {
    let dir = state.settings.export_dir.clone();
    let path = archive_path(state, file_name);
    let key = state.keys.archive_key(&req.id);
    let src = ConnectorSource {
        handle: tokio::runtime::Handle::current(),
        connector: state.connector.clone(),
        acc,
    };
    let st = state.clone();
    let locale = req.locale();
    let reference = super::reference(&req.id);
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        std::fs::create_dir_all(&dir)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = std::io::BufWriter::new(opts.open(&path)?);
        let writer = export::crypt::EncryptingWriter::new(file, &key)?;
        let meta = export::Meta {
            locale,
            company: &st.settings.company,
            reference: &reference,
            generated_at: Utc::now(),
        };
        let built = export::build(writer, &src, &meta).and_then(|w| Ok(w.finish()?));
        match built {
            Ok((mut file, size)) => {
                use std::io::Write;
                file.flush()?;
                file.get_ref().sync_all()?;
                Ok(size)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    })
    .await?
}

async fn build_and_deliver(state: Arc<AppState>, id: &str, acc: AccountRef) -> anyhow::Result<()> {
    let req = verification::get(&state, id).await?;
    let file_name = format!("{}.ppx", uuid::Uuid::new_v4().simple());
    let size = build_archive(&state, &req, acc, &file_name).await?;
    let now = store::now();
    let expires_at = now + DOWNLOAD_TTL_SECS;
    let locale = req.locale();
    let mut tx = state.db.begin().await?;
    sqlx::query("INSERT INTO exports (request_id, file_name, size_bytes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(&file_name)
        .bind(size as i64)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    requests::set_status(&mut tx, id, Status::Processing, Status::Completed, now).await?;
    let mut data = req.data();
    data["download_expires_at"] = serde_json::json!(expires_at);
    requests::set_data(&mut tx, id, &data, &[], Some("archive_ready")).await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "system",
            "export_ready",
            Some(Status::Processing),
            Some(Status::Completed),
            serde_json::json!({"bytes": size}),
        ),
    )
    .await?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("link", &download_url(&state, id, locale, expires_at));
    ctx.insert(
        "expires",
        &crate::i18n::long_date(
            locale,
            chrono::DateTime::<Utc>::from_timestamp(expires_at, 0)
                .unwrap_or_default()
                .with_timezone(&state.settings.company.country.timezone())
                .date_naive(),
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
    Ok(())
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub file_name: String,
    pub size_bytes: i64,
    pub expires_at: i64,
    pub deleted_at: Option<i64>,
}

/// The archive while it may still be downloaded.
pub async fn available(state: &AppState, id: &str) -> WResult<ExportRow> {
    let row: Option<ExportRow> = sqlx::query_as(
        "SELECT file_name, size_bytes, expires_at, deleted_at FROM exports WHERE request_id = $1",
    )
    .bind(id)
    .fetch_optional(state.db.read())
    .await?;
    match row {
        Some(r) if r.deleted_at.is_none() && r.expires_at > store::now() => Ok(r),
        _ => Err(WorkflowError::DownloadExpired),
    }
}

/// Decrypts the archive into a stream of chunks for the HTTP response.
pub fn open_stream(
    state: &AppState,
    id: &str,
    row: &ExportRow,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let path = archive_path(state, &row.file_name);
    let key = state.keys.archive_key(id);
    tokio::task::spawn_blocking(move || {
        let res = std::fs::File::open(&path).and_then(|f| {
            export::crypt::decrypt(std::io::BufReader::new(f), &key, |chunk| {
                tx.blocking_send(Ok(chunk))
                    .map_err(|_| std::io::Error::other("client went away"))
            })
        });
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

/// Deletes archives whose link has expired (run by the sweeper).
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let now = store::now();
    let expired: Vec<(String, String)> =
        sqlx::query_as("SELECT request_id, file_name FROM exports WHERE deleted_at IS NULL AND expires_at <= $1 LIMIT 200")
            .bind(now)
            .fetch_all(state.db.read())
            .await?;
    for (id, file) in &expired {
        match std::fs::remove_file(archive_path(state, file)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut tx = state.db.begin().await?;
        sqlx::query("UPDATE exports SET deleted_at = $1 WHERE request_id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
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
    }
    Ok(expired.len())
}
