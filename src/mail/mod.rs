//! Outgoing mail: queued in the outbox inside the transaction that causes
//! it (template, language and context), then rendered and delivered by the
//! worker.

pub mod transport;
pub mod worker;

use std::time::Duration;

use tera::{Context, Tera};

use crate::{
    crypto::Keys,
    domain::Locale,
    store::{outbox, Conn},
};

/// How long mail may take and how it is retried (README "Operations").
/// Tests shorten these; the defaults are for production.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Bounds one whole SMTP send: connect, greeting, TLS, every command
    /// and the data. A server that goes silent costs at most this.
    pub send_timeout: Duration,
    /// How long claimed mail stays leased to one worker. Renewed before
    /// each send to outlast it, so it is never shorter than the send
    /// timeout plus a margin.
    pub lease: Duration,
    /// Backoff cap for mail that carries no code (codes use the worker's
    /// `mail_retry_max`, well under their 15-minute life).
    pub retry_max_other: Duration,
    /// Mail without a code still undelivered after this long is held.
    pub give_up_after: Duration,
    /// Held mail is queued again this often, and at every start.
    pub held_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            send_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(90),
            retry_max_other: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(3 * 24 * 60 * 60),
            held_retry: Duration::from_secs(30 * 60),
        }
    }
}

/// Stands in the stored bodies where the secret goes; replaced only in
/// memory, at send time.
pub const SECRET_PLACEHOLDER: &str = "[[portal-secret]]";

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders `templates/email/{name}.txt` and `.html`; the subject is the
/// locale key `email.{name}.subject`.
pub fn render(tera: &Tera, locale: Locale, name: &str, ctx: &Context) -> anyhow::Result<Rendered> {
    let mut ctx = ctx.clone();
    ctx.insert("lang", locale.as_str());
    // Subjects only hold `{{ name }}` placeholders; a full template compile
    // per mail would cost more than the rest of the intake.
    let mut subject = crate::i18n::t(locale, &format!("email.{name}.subject"));
    if let serde_json::Value::Object(vars) = ctx.clone().into_json() {
        for (k, v) in vars {
            if let serde_json::Value::String(v) = v {
                subject = subject.replace(&format!("{{{{ {k} }}}}"), &v);
            }
        }
    }
    ctx.insert("subject", &subject);
    Ok(Rendered {
        subject,
        text: tera.render(&format!("email/{name}.txt"), &ctx)?,
        html: tera.render(&format!("email/{name}.html"), &ctx)?,
    })
}

pub struct Outgoing<'a> {
    pub request_id: Option<&'a str>,
    pub to: &'a str,
    pub locale: Locale,
    pub template: &'a str,
    pub ctx: Context,
    /// e.g. the verification code: sealed at rest, never stored in the clear.
    pub secret: Option<&'a str>,
    pub forget_address: bool,
}

/// A mail with its secret sealed, ready to be written in a transaction.
/// It is rendered only when the worker sends it: rendering at intake cost a
/// tenth of the request's CPU, and storing text and HTML about half of the
/// bytes it wrote.
pub struct Prepared {
    id: String,
    request_id: Option<String>,
    to: String,
    template: String,
    context: String,
    sealed: Option<String>,
    forget_address: bool,
}

pub fn prepare(tera: &Tera, keys: &Keys, m: Outgoing<'_>) -> anyhow::Result<Prepared> {
    // A template that does not exist is a bug: refuse the change now rather
    // than queue a mail the worker could never render.
    for ext in ["txt", "html"] {
        tera.get_template(&format!("email/{}.{ext}", m.template))?;
    }
    let mut ctx = m.ctx;
    ctx.insert("lang", m.locale.as_str());
    if m.secret.is_some() {
        ctx.insert("secret", SECRET_PLACEHOLDER);
    }
    Ok(Prepared {
        id: crate::store::new_id(),
        request_id: m.request_id.map(str::to_string),
        to: m.to.to_string(),
        template: m.template.to_string(),
        context: ctx.into_json().to_string(),
        sealed: m.secret.map(|s| keys.seal(s)),
        forget_address: m.forget_address,
    })
}

/// Renders a queued mail from its stored context (see [`prepare`]).
pub fn render_queued(tera: &Tera, template: &str, context: &str) -> anyhow::Result<Rendered> {
    let value: serde_json::Value = serde_json::from_str(context)?;
    let locale = value
        .get("lang")
        .and_then(|l| l.as_str())
        .and_then(Locale::parse)
        .ok_or_else(|| anyhow::anyhow!("queued mail without a language"))?;
    render(tera, locale, template, &Context::from_value(value)?)
}

impl Prepared {
    pub fn as_new_mail(&self) -> outbox::NewMail<'_> {
        outbox::NewMail {
            id: &self.id,
            request_id: self.request_id.as_deref(),
            to_addr: &self.to,
            template: &self.template,
            context: &self.context,
            sealed_secret: self.sealed.as_deref(),
            forget_address: self.forget_address,
        }
    }
}

pub async fn store(conn: &mut Conn, p: &Prepared, now: i64) -> anyhow::Result<()> {
    outbox::insert(conn, &p.as_new_mail(), now).await?;
    Ok(())
}

/// As [`enqueue`], returning the outbox id to follow the mail by.
pub async fn enqueue_id(
    conn: &mut Conn,
    tera: &Tera,
    keys: &Keys,
    m: Outgoing<'_>,
    now: i64,
) -> anyhow::Result<String> {
    let p = prepare(tera, keys, m)?;
    store(conn, &p, now).await?;
    Ok(p.id)
}

pub async fn enqueue(
    conn: &mut Conn,
    tera: &Tera,
    keys: &Keys,
    m: Outgoing<'_>,
    now: i64,
) -> anyhow::Result<()> {
    let p = prepare(tera, keys, m)?;
    store(conn, &p, now).await
}
