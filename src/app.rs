//! The only wiring place: shared state, the actix App, background workers.

use std::{net::TcpListener, num::NonZeroU32, sync::Arc, time::Duration};

use actix_session::{
    config::CookieContentSecurity, storage::CookieSessionStore, SessionMiddleware,
};
use actix_web::{cookie::Key, dev::ServerHandle, web, App, HttpServer};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{watch, Notify};

use crate::{
    config::{Mode, Settings},
    connector::{Connector, Systems},
    crypto::Keys,
    mail::{transport::Transport, worker::Worker},
    metrics::Metrics,
    store::Db,
};

pub type ClientLimiter = DefaultKeyedRateLimiter<std::net::IpAddr>;

pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub keys: Arc<Keys>,
    pub tera: tera::Tera,
    /// The primary system (`systems.primary`), the one most flows use.
    pub connector: Arc<dyn Connector>,
    pub systems: Arc<Systems>,
    /// Receivers of the portal's events (`[[webhooks]]`).
    pub webhooks: Vec<crate::workflow::webhooks::Receiver>,
    pub metrics: Arc<Metrics>,
    pub mail_notify: Arc<Notify>,
    /// Wakes the export worker when a job is stored.
    pub export_notify: Arc<Notify>,
    pub client_limiter: Option<Arc<ClientLimiter>>,
    /// Filter counts of a large staff queue, reused for a few seconds.
    pub queue_counts: crate::store::cases::CountsCache,
    /// The intake writers (group commit), see `workflow::intake::spawn_writers`.
    pub intake: crate::workflow::intake::IntakeQueue,
    /// Bounds concurrent argon2 work so a login storm cannot take every
    /// blocking thread (and the CPU) from the rest of the server.
    pub password_pool: Arc<tokio::sync::Semaphore>,
    /// Pages that depend only on the company file and the language.
    pub pages: crate::web::portal::pages::Pages,
}

pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let db = Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    let keys = Arc::new(Keys::derive(&settings.master_key()));
    let metrics = Arc::new(Metrics::new());
    let systems = Arc::new(
        Systems::build(
            &settings.company.connectors,
            &db,
            settings.company.country.timezone(),
            &keys,
            &metrics,
        )
        .await?,
    );
    let webhooks: Vec<crate::workflow::webhooks::Receiver> = settings
        .company
        .webhooks
        .iter()
        .map(crate::workflow::webhooks::Receiver::from_config)
        .collect::<anyhow::Result<_>>()?;
    // A receiver hears what happens from the start of this process on
    // (its position is set before the first request is taken).
    for r in &webhooks {
        crate::store::webhooks::cursor(&db, &r.url).await?;
    }
    let client_limiter = NonZeroU32::new(settings.client_rate_limit_per_minute)
        .map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
    Ok(AppState {
        intake: crate::workflow::intake::spawn_writers(db.clone(), keys.clone()),
        queue_counts: Default::default(),
        pages: Default::default(),
        connector: systems.primary.clone(),
        systems,
        webhooks,
        tera: crate::i18n::templates()?,
        db,
        keys,
        metrics,
        mail_notify: Arc::new(Notify::new()),
        export_notify: Arc::new(Notify::new()),
        client_limiter,
        password_pool: Arc::new(tokio::sync::Semaphore::new(
            crate::workflow::staff_auth::hash_permits(),
        )),
        settings,
    })
}

pub struct Server {
    pub port: u16,
    /// The port of the metrics-only listener, when `metrics_bind` is set.
    pub metrics_port: Option<u16>,
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_server: Option<(ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

/// `/metrics` alone on its own address (`PORTAL_METRICS_BIND`), so the
/// public listener need not serve it at all.
#[allow(clippy::type_complexity)]
fn metrics_server(
    state: web::Data<AppState>,
    bind: &str,
) -> anyhow::Result<(
    u16,
    (ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>),
)> {
    let listener = TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on PORTAL_METRICS_BIND {bind}: {e}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(crate::web::ops::metrics_routes)
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(2)
    .disable_signals()
    .run();
    let handle = server.handle();
    Ok((port, (handle, tokio::spawn(server))))
}

impl Server {
    pub async fn start(state: AppState, listener: TcpListener) -> anyhow::Result<Server> {
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let (shutdown, rx) = watch::channel(false);

        let timing = state.settings.mail_timing.clone();
        let transport = match &state.settings.smtp_url {
            Some(url) => {
                use secrecy::ExposeSecret;
                let url = url.expose_secret();
                if crate::mail::transport::sends_credentials_in_clear(url) {
                    tracing::warn!(
                        host = crate::mail::transport::smtp_host(url).unwrap_or_default(),
                        "PORTAL_SMTP_URL says tls=none: the SMTP password goes over the network in clear"
                    );
                }
                Transport::Smtp(
                    crate::mail::transport::Smtp::new(url, timing.send_timeout)
                        .map_err(anyhow::Error::msg)?,
                )
            }
            None if state.settings.mode == Mode::Demo => Transport::DevMailbox(state.db.clone()),
            None => anyhow::bail!("PORTAL_SMTP_URL is not set"),
        };
        let worker = Worker {
            db: state.db.clone(),
            transport,
            keys: state.keys.clone(),
            tera: state.tera.clone(),
            from: state.settings.mail_from.parse()?,
            notify: state.mail_notify.clone(),
            metrics: state.metrics.clone(),
            retry_base: state.settings.mail_retry_base,
            retry_max: state.settings.mail_retry_max,
            interval: state.settings.worker_interval,
            timing,
        };
        let mut tasks = vec![tokio::spawn(worker.run(rx.clone()))];
        tasks.push(tokio::spawn(sweeper(state.clone(), rx.clone())));
        tasks.push(tokio::spawn(step_runner(state.clone(), rx.clone())));
        tasks.push(tokio::spawn(crate::workflow::webhooks::run(
            state.clone().into_inner(),
            rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::workflow::export::run_worker(
            state.clone().into_inner(),
            rx.clone(),
        )));

        let cookie_key = Key::from(state.keys.cookie_key());
        let secure = state.settings.secure_cookies();
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .app_data(web::JsonConfig::default().limit(64 * 1024))
                .configure(crate::web::routes)
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), cookie_key.clone())
                        .cookie_name("portal_session".into())
                        .cookie_secure(secure)
                        .cookie_http_only(true)
                        .cookie_same_site(actix_web::cookie::SameSite::Lax)
                        .cookie_content_security(CookieContentSecurity::Private)
                        .build(),
                )
                .wrap(actix_web::middleware::from_fn(
                    crate::web::middleware::client_limit,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::web::middleware::observe,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::web::middleware::security_headers,
                ))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .disable_signals()
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        let (metrics_port, metrics_server) = match &state.settings.metrics_bind {
            Some(bind) => {
                let (port, server) = metrics_server(state.clone(), bind)?;
                (Some(port), Some(server))
            }
            None => (None, None),
        };
        Ok(Server {
            port,
            metrics_port,
            metrics_server,
            state,
            handle,
            shutdown,
            tasks,
            server,
        })
    }

    /// Graceful: stop accepting, finish in-flight requests, stop workers.
    /// The workers hear it first so that the mail in flight finishes (or is
    /// left queued) while the HTTP requests finish, not after them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Some((handle, server)) = self.metrics_server {
            handle.stop(true).await;
            let _ = server.await;
        }
        self.handle.stop(true).await;
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.server.await;
        self.state.db.close().await;
    }
}

/// Runs the company systems' due steps (erasures, email changes,
/// objections) that could not finish while the customer waited.
async fn step_runner(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match crate::workflow::steps::run_due(&state).await {
            Ok(n) if n > 0 => tracing::debug!(steps = n, "connector steps ran"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "connector steps failed to run"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.settings.worker_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn sweeper(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match crate::workflow::sweep::run(&state).await {
            Ok(r) if r.reminded + r.expired + r.purged + r.archives_deleted > 0 => {
                tracing::info!(
                    reminded = r.reminded,
                    expired = r.expired,
                    purged = r.purged,
                    archives_deleted = r.archives_deleted,
                    "housekeeping"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        match crate::workflow::retention::scheduled(&state).await {
            Ok(Some(c)) => tracing::info!(
                deleted = c.iter().filter_map(|x| x.3).sum::<u64>(),
                "retention applied"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed"),
        }
        match crate::workflow::anonymise::scheduled(&state).await {
            Ok(lines) if !lines.is_empty() => {
                let acted = lines.iter().filter(|l| l.action != "wait").count();
                tracing::info!(accounts = lines.len(), acted, "inactivity schedule ran")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "inactivity schedule failed"),
        }
        match crate::workflow::digest::run(&state, crate::store::now()).await {
            Ok(Some(d)) => tracing::info!(
                new = d.new,
                due_soon = d.due_soon,
                overdue = d.overdue,
                checklist = d.checklist,
                "daily digest queued"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "daily digest failed"),
        }
        if let Ok((open, failed, oldest)) = crate::store::steps::gauges(&state.db).await {
            state.metrics.connector_steps_open.set(open);
            state.metrics.connector_steps_failed.set(failed);
            state
                .metrics
                .connector_step_failing_age
                .set(oldest.map_or(0, |t| (crate::store::now() - t).max(0)));
        }
        if let Ok(n) = crate::store::webhooks::backlog(&state.db).await {
            state.metrics.webhook_backlog.set(n);
        }
        if let Ok(n) = crate::store::outbox::backlog(&state.db).await {
            state.metrics.outbox_backlog.set(n);
        }
        match crate::store::cases::open_counts(&state.db, crate::store::now()).await {
            Ok(groups) => {
                state
                    .metrics
                    .cases_overdue
                    .set(groups.iter().map(|g| g.overdue).sum());
            }
            Err(e) => tracing::warn!(error = %e, "counting overdue cases failed"),
        }
        match crate::store::exports::job_stats(&state.db).await {
            Ok((queued, retrying, oldest)) => {
                let m = &state.metrics;
                m.export_jobs_queued.set(queued);
                m.export_jobs_retrying.set(retrying);
                m.export_jobs_oldest_age
                    .set(oldest.map_or(0, |t| (crate::store::now() - t).max(0)));
            }
            Err(e) => tracing::warn!(error = %e, "counting export jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
