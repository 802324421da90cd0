//! Prometheus metrics. Labels never carry personal data: routes are the
//! matched patterns (`/{lang}/r/{id}/code`), not the paths.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// A call to a company system (connector): which system and operation,
/// and how it ended (`ok`, `unavailable`, `unauthorized`, `unsupported`,
/// `refused`, `bad_answer`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub system: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallTimeLabels {
    pub system: String,
    pub operation: String,
}

type HistogramFamily = Family<CallTimeLabels, Histogram, fn() -> Histogram>;

fn call_histogram() -> Histogram {
    // 5 ms … 20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub codes_sent: Counter,
    pub verifications: Family<ResultLabels, Counter>,
    pub requests_created: Counter,
    pub mails_sent: Counter,
    pub mail_failures: Counter,
    pub outbox_backlog: Gauge,
    /// Seconds since the oldest mail still waiting was queued (0: none).
    pub mail_oldest_queued_age: Gauge,
    /// Unix time of the last mail a server accepted (0: none yet).
    pub mail_last_success: Gauge,
    /// Mails held for the operator (refused for good, or retried too long).
    pub mail_held: Gauge,
    /// 1 when a write to the database commits (the `/readyz` check), else 0.
    pub ready: Gauge,
    /// Open cases past their legal deadline, counted by the sweeper.
    pub cases_overdue: Gauge,
    /// Export jobs waiting or being built, those that failed at least once,
    /// and the age of the oldest.
    pub export_jobs_queued: Gauge,
    pub export_jobs_retrying: Gauge,
    pub export_jobs_oldest_age: Gauge,
    pub connector_calls: Family<CallLabels, Counter>,
    pub connector_call_seconds: HistogramFamily,
    /// Company-system steps not settled (waiting, retrying, failed), those
    /// failed for staff, and the age of the oldest step that is failing.
    pub connector_steps_open: Gauge,
    pub connector_steps_failed: Gauge,
    pub connector_step_failing_age: Gauge,
    /// Webhook deliveries waiting for their receiver.
    pub webhook_backlog: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portal");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let codes_sent = Counter::default();
        let verifications = Family::<ResultLabels, Counter>::default();
        let requests_created = Counter::default();
        let mails_sent = Counter::default();
        let mail_failures = Counter::default();
        let outbox_backlog = Gauge::default();
        let mail_oldest_queued_age = Gauge::default();
        let mail_last_success = Gauge::default();
        let mail_held = Gauge::default();
        let ready = Gauge::default();
        let cases_overdue = Gauge::default();
        let export_jobs_queued = Gauge::default();
        let export_jobs_retrying = Gauge::default();
        let export_jobs_oldest_age = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "codes_sent",
            "Verification codes queued for sending",
            codes_sent.clone(),
        );
        registry.register(
            "verifications",
            "Code checks by result",
            verifications.clone(),
        );
        registry.register(
            "requests_created",
            "Privacy requests received",
            requests_created.clone(),
        );
        registry.register(
            "mails_sent",
            "Mails accepted by the mail server",
            mails_sent.clone(),
        );
        registry.register(
            "mail_failures",
            "Mail delivery attempts that failed",
            mail_failures.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Mails waiting in the outbox",
            outbox_backlog.clone(),
        );
        registry.register(
            "mail_oldest_queued_age_seconds",
            "Age of the oldest mail waiting in the outbox",
            mail_oldest_queued_age.clone(),
        );
        registry.register(
            "mail_last_success_timestamp_seconds",
            "Unix time when a mail server last accepted a mail",
            mail_last_success.clone(),
        );
        registry.register(
            "mail_held",
            "Mails held for the operator after a permanent refusal",
            mail_held.clone(),
        );
        registry.register(
            "ready",
            "1 when a write to the database commits, 0 when the instance is not ready",
            ready.clone(),
        );
        registry.register(
            "cases_overdue",
            "Open cases past their legal deadline",
            cases_overdue.clone(),
        );
        registry.register(
            "export_jobs_queued",
            "Export jobs waiting or being built",
            export_jobs_queued.clone(),
        );
        registry.register(
            "export_jobs_retrying",
            "Export jobs that failed at least once and wait for their next try",
            export_jobs_retrying.clone(),
        );
        registry.register(
            "export_jobs_oldest_age_seconds",
            "Age of the oldest export job",
            export_jobs_oldest_age.clone(),
        );
        let connector_calls = Family::<CallLabels, Counter>::default();
        let connector_call_seconds: HistogramFamily = Family::new_with_constructor(call_histogram);
        let connector_steps_open = Gauge::default();
        let connector_steps_failed = Gauge::default();
        let connector_step_failing_age = Gauge::default();
        let webhook_backlog = Gauge::default();
        registry.register(
            "connector_calls",
            "Calls to the company's systems by system, operation and outcome",
            connector_calls.clone(),
        );
        registry.register(
            "connector_call_seconds",
            "Duration of calls to the company's systems",
            connector_call_seconds.clone(),
        );
        registry.register(
            "connector_steps_open",
            "Company-system steps not settled (waiting, retrying or failed)",
            connector_steps_open.clone(),
        );
        registry.register(
            "connector_steps_failed",
            "Company-system steps that failed and wait for staff",
            connector_steps_failed.clone(),
        );
        registry.register(
            "connector_step_failing_age_seconds",
            "Age of the oldest company-system step that is failing (retrying or failed)",
            connector_step_failing_age.clone(),
        );
        registry.register(
            "webhook_backlog",
            "Webhook deliveries waiting for their receiver",
            webhook_backlog.clone(),
        );
        Metrics {
            registry,
            connector_calls,
            connector_call_seconds,
            connector_steps_open,
            connector_steps_failed,
            connector_step_failing_age,
            webhook_backlog,
            http_requests,
            codes_sent,
            verifications,
            requests_created,
            mails_sent,
            mail_failures,
            outbox_backlog,
            mail_oldest_queued_age,
            mail_last_success,
            mail_held,
            ready,
            cases_overdue,
            export_jobs_queued,
            export_jobs_retrying,
            export_jobs_oldest_age,
        }
    }

    pub fn connector_call(&self, system: &str, operation: &str, outcome: &str, seconds: f64) {
        self.connector_calls
            .get_or_create(&CallLabels {
                system: system.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.connector_call_seconds
            .get_or_create(&CallTimeLabels {
                system: system.to_string(),
                operation: operation.to_string(),
            })
            .observe(seconds);
    }

    pub fn verification(&self, result: &str) {
        self.verifications
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
