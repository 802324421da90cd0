//! The case page: facts, proofs, history, checklist and the actions.

use super::*;

// ---------- the case page ----------

#[derive(Deserialize, Default)]
pub(super) struct CaseQuery {
    template: Option<String>,
    done: Option<String>,
}

/// Built-in starting points, used when the company configures no
/// `reply_templates` of its own.
pub const REPLY_TEMPLATES: [&str; 4] = ["answer", "need_info", "done", "cannot_help"];

/// (id, title in the staff member's language, body in the customer's).
pub(super) fn reply_templates(
    state: &AppState,
    staff: Locale,
    customer: Locale,
) -> Vec<(String, String, String)> {
    let configured = &state.settings.company.reply_templates;
    if !configured.is_empty() {
        return configured
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.title.get(staff).to_string(),
                    r.body.get(customer).to_string(),
                )
            })
            .collect();
    }
    REPLY_TEMPLATES
        .iter()
        .map(|t| {
            (
                t.to_string(),
                crate::i18n::t(staff, &format!("staff.reply_templates.{t}.label")),
                crate::i18n::t_args(
                    customer,
                    &format!("staff.reply_templates.{t}.body"),
                    &[("company", &state.settings.company.name)],
                ),
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn case_context(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    me: &staff::StaffRow,
    row: &RequestRow,
) -> Result<Context, Fail> {
    let f = fail(state, locale);
    let now = store::now();
    let (names, members) = staff_names(state).await.map_err(&f)?;
    let mut ctx = base(state, req, session, locale, Some(me));
    ctx.insert("case", &case_row(state, locale, row, &names, now));
    ctx.insert("email", &row.email);
    ctx.insert("customer_lang", &crate::i18n::t(row.locale(), "lang.name"));
    ctx.insert("channel", &label(locale, "staff.channels", &row.channel));
    ctx.insert(
        "is_open",
        &!(row.status().is_final() || row.status() == Status::AwaitingVerification),
    );
    let data = row.data();
    if let Some(m) = data.get("message").and_then(|m| m.as_str()) {
        ctx.insert("message", m);
    }
    // The stored data itself is not shown: its keys are the portal's, not
    // the staff member's words. What a person needs of it is said here; the
    // JSON API carries all of it.
    ctx.insert("details", &request_details(state, locale, row));
    let reasons: Vec<String> = row
        .reasons()
        .iter()
        .map(|r| label(locale, "staff.reasons", r))
        .collect();
    ctx.insert("reasons", &reasons);

    let history = audit::for_request(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?;
    let notes = cases::notes(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?;
    let notes_by_id: BTreeMap<&str, &cases::NoteRow> =
        notes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut verified_by = None;
    let events: Vec<_> = history
        .iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            if e.action == "verified" {
                verified_by = detail
                    .get("method")
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
            }
            let note = detail
                .get("note_id")
                .and_then(|n| n.as_str())
                .and_then(|n| notes_by_id.get(n))
                .map(|n| n.body.clone());
            let facts: Vec<String> = detail
                .as_object()
                .map(|o| o.iter().filter_map(|(k, v)| fact(locale, k, v)).collect())
                .unwrap_or_default();
            serde_json::json!({
                "at": datetime_of(state, e.at),
                "actor": actor_name(locale, &e.actor, &names),
                "action": label(locale, "staff.events", &e.action),
                "from": e.from_status.as_deref().map(|s| label(locale, "staff.statuses", s)),
                "to": e.to_status.as_deref().map(|s| label(locale, "staff.statuses", s)),
                "note": note,
                "facts": facts.join(", "),
            })
        })
        .collect();
    ctx.insert("history", &events);
    // Checklists of the company's other systems (export: add their data;
    // erasure: clean them, Art. 19).
    let tasks: Vec<_> = store::tasks::for_request(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?
        .iter()
        .map(|t| {
            let items: Vec<store::tasks::ChecklistItem> =
                serde_json::from_str(&t.checklist).unwrap_or_default();
            serde_json::json!({
                "id": t.id,
                "kind": label(locale, "staff.tasks", &t.kind),
                "done": t.status != "open",
                "items": items.iter().map(|i| serde_json::json!({"id": i.id, "name": i.name.get(locale), "done": i.done})).collect::<Vec<_>>(),
            })
        })
        .collect();
    ctx.insert("tasks", &tasks);
    // What each company system did (connectors), with the retry and
    // mark-done actions for a step that waits or failed.
    let steps: Vec<_> = crate::workflow::steps::view(state, &row.id, locale)
        .await
        .map_err(f)?
        .into_iter()
        .map(|s| {
            let status = serde_json::to_value(s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let open = !s.status.settled();
            serde_json::json!({
                "system": s.system,
                "name": s.system_name,
                "operation": label(locale, "staff.step_ops", &s.operation),
                "status": label(locale, "staff.step_status", &status),
                "status_code": status,
                "attempts": s.attempts,
                "error": s.error,
                "account": s.account,
                "next": s.next_attempt_at.map(|t| datetime_of(state, t)),
                "done_by": s.done_by,
                "can_retry": open && s.status != crate::workflow::steps::StepStatus::Waiting,
                "can_complete": open,
            })
        })
        .collect();
    ctx.insert("steps", &steps);
    let verified = match (verified_by, row.verified_at) {
        (Some(m), _) => label(locale, "staff.verified_by", &m),
        (None, Some(_)) => label(locale, "staff.verified_by", "email_code"),
        (None, None) => crate::i18n::t(locale, "staff.verified_by.not_yet"),
    };
    ctx.insert("verified_by", &verified);
    ctx.insert("proofs", &proof_lines(state, locale, row));

    match actions::extension_allowed(state, row) {
        Ok(()) => ctx.insert("can_extend", &true),
        Err(key) => ctx.insert("extend_blocked", &crate::i18n::t(locale, key)),
    }
    ctx.insert(
        "can_execute",
        &(actions::can_execute(row.kind()) && row.status() == Status::Escalated),
    );
    let assignable: Vec<_> = members
        .iter()
        .filter(|m| m.disabled == 0 && m.enrolled_at.is_some())
        .map(|m| serde_json::json!({"id": m.id, "email": m.email, "current": row.assignee.as_deref() == Some(m.id.as_str())}))
        .collect();
    ctx.insert("members", &assignable);
    let templates: Vec<_> = reply_templates(state, locale, row.locale())
        .into_iter()
        .map(|(id, label, _)| serde_json::json!({"id": id, "label": label}))
        .collect();
    ctx.insert("templates", &templates);
    ctx.insert("template", "");
    ctx.insert("error_action", "");
    ctx.insert("failed_text", "");
    Ok(ctx)
}

/// An email collision's proofs as sentences: both addresses and the
/// knowledge check of the account the choice deletes.
pub(super) fn proof_lines(state: &AppState, locale: Locale, row: &RequestRow) -> Vec<String> {
    use crate::i18n::t_args;
    workflow::change_email::proofs(row)
        .iter()
        .map(|p| {
            let at = p.at.map(|t| datetime_of(state, t)).unwrap_or_default();
            match p.side {
                "knowledge" if p.method == "matched" => t_args(
                    locale,
                    "staff.proofs.knowledge_matched",
                    &[
                        ("option", p.option.as_deref().unwrap_or("")),
                        ("account", &p.account),
                        ("tries", &p.tries.unwrap_or(1).to_string()),
                        ("max", &workflow::delete::KNOWLEDGE_ATTEMPTS.to_string()),
                        ("at", &at),
                    ],
                ),
                "knowledge" => crate::i18n::t(locale, "staff.proofs.knowledge_missing"),
                "new" if p.method == "email_code_pending" => {
                    crate::i18n::t(locale, "staff.proofs.pending")
                }
                "lost_mailbox" => t_args(
                    locale,
                    "staff.proofs.lost_mailbox",
                    &[
                        ("account", &p.account),
                        (
                            "knowledge",
                            &label(locale, "staff.proof_results", &p.method),
                        ),
                        (
                            "authenticator",
                            &label(
                                locale,
                                "staff.proof_results",
                                p.authenticator.as_deref().unwrap_or("none"),
                            ),
                        ),
                        ("at", &at),
                    ],
                ),
                "new" if p.account.is_empty() => {
                    t_args(locale, "staff.proofs.new_no_account", &[("at", &at)])
                }
                side => t_args(
                    locale,
                    &format!("staff.proofs.{side}"),
                    &[
                        ("account", &p.account),
                        ("method", &label(locale, "staff.verified_by", &p.method)),
                        ("at", &at),
                    ],
                ),
            }
        })
        .collect()
}

pub(super) fn actor_name(locale: Locale, actor: &str, names: &BTreeMap<String, String>) -> String {
    match actor.strip_prefix("staff:") {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| actor.to_string()),
        None => label(locale, "staff.actors", actor),
    }
}

pub(super) async fn load_case(
    state: &web::Data<AppState>,
    locale: Locale,
    id: &str,
) -> Result<RequestRow, Fail> {
    workflow::verification::get(state, id)
        .await
        .map_err(|e| Fail::Err(e, locale, state.clone()))
}

pub(super) async fn case_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    query: web::Query<CaseQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let row = load_case(&state, locale, &path).await?;
    let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
    if let Some(t) = nonempty(&query.template) {
        // The template in the customer's language, editable before sending.
        if let Some((id, _, body)) = reply_templates(&state, locale, row.locale())
            .into_iter()
            .find(|(id, _, _)| id == t)
        {
            ctx.insert("reply_text", &body);
            ctx.insert("template", &id);
        }
    }
    if let Some(d) = nonempty(&query.done) {
        let key = format!("staff.done.{d}");
        if crate::i18n::has_key(locale, &key) {
            ctx.insert("notice", &crate::i18n::t(locale, &key));
        }
    }
    Ok(render(&state, StatusCode::OK, "staff/case.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    months: Option<i64>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    step: Option<String>,
    #[serde(default)]
    system: String,
    /// `1` on the second step of an action that cannot be undone.
    #[serde(default)]
    confirm: Option<String>,
}

pub(super) async fn case_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let (id, name) = path.into_inner();
    let form = form.into_inner();
    let actor = staff_auth::actor(&me.id);
    let action = match name.as_str() {
        "reject" => actions::Action::Reject {
            reason: form.text.clone(),
        },
        "ask" => actions::Action::Ask {
            message: form.text.clone(),
        },
        "extend" => actions::Action::Extend {
            months: form.months.unwrap_or(0),
            reason: form.text.clone(),
        },
        "reply" => actions::Action::Reply {
            message: form.text.clone(),
        },
        "assign" => actions::Action::Assign {
            assignee: form.assignee.clone(),
        },
        "note" => actions::Action::Note {
            text: form.text.clone(),
        },
        "execute" => actions::Action::Execute {
            override_reason: Some(form.text.clone()),
        },
        "step_retry" => actions::Action::RetryStep {
            system: form.system.clone(),
        },
        "step_complete" => actions::Action::CompleteStep {
            system: form.system.clone(),
            reason: form.text.clone(),
        },
        _ => return Err(Fail::Err(WorkflowError::NotFound, locale, state.clone())),
    };
    // A reply is previewed first, exactly as the customer will read it.
    if name == "reply" && form.step.as_deref() != Some("send") {
        let row = load_case(&state, locale, &id).await?;
        let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
        ctx.insert("reply_text", &form.text);
        if form.text.trim().is_empty() {
            ctx.insert("error", &crate::i18n::t(locale, "staff.errors.text_empty"));
            return Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/case.html",
                &ctx,
            ));
        }
        let mail = actions::render_reply(&state, &row, &form.text).map_err(fail(&state, locale))?;
        ctx.insert("preview_subject", &mail.subject);
        ctx.insert("preview_text", &mail.text);
        return Ok(render(&state, StatusCode::OK, "staff/preview.html", &ctx));
    }
    // Carrying out erases an account, moves an address or stops processing:
    // the first press only says what will happen; the second (`confirm=1`)
    // does it.
    if name == "execute" && form.confirm.as_deref() != Some("1") {
        let row = load_case(&state, locale, &id).await?;
        let mut ctx = base(&state, &req, &session, locale, Some(&me));
        ctx.insert("case", &serde_json::json!({"id": row.id}));
        let mut lines = vec![execute_consequence(locale, &row)];
        let reasons: Vec<String> = row
            .reasons()
            .iter()
            .map(|r| label(locale, "staff.reasons", r))
            .collect();
        let why = form.text.trim();
        if !reasons.is_empty() {
            lines.push(if why.is_empty() {
                crate::i18n::t_args(
                    locale,
                    "staff.confirm.recheck",
                    &[("reasons", &reasons.join(", "))],
                )
            } else {
                crate::i18n::t_args(
                    locale,
                    "staff.confirm.override",
                    &[("reasons", &reasons.join(", ")), ("text", why)],
                )
            });
        }
        ctx.insert(
            "confirm_heading",
            &crate::i18n::t_args(
                locale,
                "staff.confirm.execute_heading",
                &[("reference", &crate::workflow::reference(&row.id))],
            ),
        );
        ctx.insert("confirm_lines", &lines);
        ctx.insert("confirm_action", &format!("/staff/cases/{id}/execute"));
        ctx.insert(
            "confirm_fields",
            &[serde_json::json!({"name": "text", "value": form.text})],
        );
        ctx.insert(
            "confirm_button",
            &crate::i18n::t(locale, "staff.confirm.execute_yes"),
        );
        ctx.insert("back_url", &format!("/staff/cases/{id}"));
        return Ok(render(&state, StatusCode::OK, "staff/confirm.html", &ctx));
    }
    match actions::apply(&state, &id, &actor, &action).await {
        Ok(_) => Ok(see_other(format!("/staff/cases/{id}?done={name}"))),
        Err(
            e @ (WorkflowError::Invalid { .. }
            | WorkflowError::WrongState { .. }
            | WorkflowError::KindUnavailable
            | WorkflowError::StillBlocked { .. }),
        ) => {
            let row = load_case(&state, locale, &id).await?;
            let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
            let msg = match &e {
                WorkflowError::Invalid { key, .. } => crate::i18n::t(locale, key),
                WorkflowError::StillBlocked { reasons } => {
                    let labels: Vec<String> = reasons
                        .iter()
                        .map(|r| label(locale, "staff.reasons", r))
                        .collect();
                    crate::i18n::t_args(
                        locale,
                        "staff.errors.still_blocked",
                        &[("reasons", &labels.join(", "))],
                    )
                }
                WorkflowError::KindUnavailable => {
                    crate::i18n::t(locale, "staff.errors.cannot_execute")
                }
                _ => crate::i18n::t(locale, "staff.errors.wrong_state"),
            };
            ctx.insert("error", &msg);
            ctx.insert("error_action", &name);
            if name == "reply"
                || name == "reject"
                || name == "ask"
                || name == "note"
                || name == "extend"
            {
                ctx.insert("failed_text", &form.text);
            }
            let status =
                StatusCode::from_u16(e.code().1).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            Ok(render(&state, status, "staff/case.html", &ctx))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

/// The request's own facts in words: the new address, the customer's
/// collision choice, the purposes stopped and still to weigh.
fn request_details(state: &AppState, locale: Locale, row: &RequestRow) -> Vec<String> {
    use crate::i18n::t_args;
    let data = row.data();
    let mut out = Vec::new();
    if let Some(e) = data.get("new_email").and_then(|v| v.as_str()) {
        out.push(t_args(
            locale,
            "staff.case.detail_new_email",
            &[("email", e)],
        ));
    }
    match data.get("choice").and_then(|v| v.as_str()) {
        Some("A") => out.push(crate::i18n::t(locale, "staff.case.detail_choice_a")),
        Some("B") => out.push(crate::i18n::t(locale, "staff.case.detail_choice_b")),
        _ => {}
    }
    let titles = |ids: Option<&serde_json::Value>| -> String {
        ids.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|id| id.as_str())
                    .map(|id| {
                        state
                            .settings
                            .company
                            .objection_purpose(id)
                            .map(|p| p.title.get(locale).to_string())
                            .unwrap_or_else(|| id.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if let Some(o) = data.get("objection") {
        let stopped = titles(o.get("stopped"));
        if !stopped.is_empty() {
            out.push(t_args(
                locale,
                "staff.case.detail_stopped",
                &[("purposes", &stopped)],
            ));
        }
        let pending = titles(o.get("pending"));
        if !pending.is_empty() {
            out.push(t_args(
                locale,
                "staff.case.detail_pending",
                &[("purposes", &pending)],
            ));
        }
    }
    out
}

/// Namespaces a stored code may be a word of, tried in order.
const VALUE_WORDS: [&str; 8] = [
    "staff.reasons",
    "staff.statuses",
    "staff.outcomes",
    "staff.verified_by",
    "staff.proof_results",
    "staff.channels",
    "staff.kinds",
    "staff.languages",
];

/// One fact of a history event in the staff member's words: "Optie: B",
/// "Toch uitgevoerd ondanks: Er staat nog een bestelling open". Facts the
/// page has no words for (ids, hashes, receipts, nested data) are left to
/// the audit log and the API, so no stored key shows up as text.
fn fact(locale: Locale, key: &str, v: &serde_json::Value) -> Option<String> {
    let name_key = format!("staff.facts.{key}");
    if !crate::i18n::has_key(locale, &name_key) {
        return None;
    }
    // A known code becomes its word; other text ("B", a date) stays; an
    // unknown code is left out rather than shown raw.
    let word = |s: &str| -> Option<String> {
        VALUE_WORDS
            .iter()
            .map(|ns| format!("{ns}.{s}"))
            .find(|k| crate::i18n::has_key(locale, k))
            .map(|k| crate::i18n::t(locale, &k))
            .or_else(|| (!s.contains('_')).then(|| s.to_string()))
    };
    let value = match v {
        serde_json::Value::String(s) => word(s)?,
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => crate::i18n::t(
            locale,
            if *b {
                "export.values.yes"
            } else {
                "export.values.no"
            },
        ),
        serde_json::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().and_then(word))
            .collect::<Option<Vec<_>>>()?
            .join(", "),
        _ => return None,
    };
    Some(format!("{}: {value}", crate::i18n::t(locale, &name_key)))
}

/// What "carry out now" does to this case, in the staff member's words.
fn execute_consequence(locale: Locale, row: &RequestRow) -> String {
    use crate::workflow::change_email::{recorded_choice, Choice};
    let key = match row.kind() {
        RequestKind::Delete => "staff.confirm.execute_delete",
        RequestKind::ChangeEmail if row.reasons().iter().any(|r| r == "email_in_use") => {
            match recorded_choice(row) {
                Some(Choice::A) => "staff.confirm.execute_collision_a",
                Some(Choice::B) => "staff.confirm.execute_collision_b",
                None => "staff.confirm.execute_collision_none",
            }
        }
        RequestKind::ChangeEmail => "staff.confirm.execute_change_email",
        RequestKind::Object => "staff.confirm.execute_object",
        _ => "staff.confirm.execute_other",
    };
    crate::i18n::t(locale, key)
}

#[derive(Deserialize)]
pub(super) struct TaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    done: String,
}

/// Ticks one item of the case's other-systems checklist.
pub(super) async fn task_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<TaskForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let id = path.into_inner();
    actions::tick_task(
        &state,
        &id,
        &staff_auth::actor(&me.id),
        &form.task,
        &form.item,
        form.done == "1",
    )
    .await
    .map_err(fail(&state, locale))?;
    Ok(see_other(format!("/staff/cases/{id}?done=task")))
}
