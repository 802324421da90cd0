//! The queue by legal deadline: filters with counts, look-up, checklist work.

use super::*;

// ---------- the queue ----------

#[derive(Deserialize, Default, Clone)]
pub(super) struct QueueQuery {
    kind: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
    /// `checklist`: cases with open checklist work, any status.
    work: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

pub(super) fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Query string for a filter link: the current filters with one changed.
pub(super) fn href(q: &QueueQuery, key: &str, value: Option<&str>) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("kind", nonempty(&q.kind)),
        ("status", nonempty(&q.status)),
        ("assignee", nonempty(&q.assignee)),
        ("overdue", nonempty(&q.overdue)),
        ("work", nonempty(&q.work)),
    ] {
        let v = if k == key { value } else { v };
        if let Some(v) = v {
            parts.push((k.to_string(), v.to_string()));
        }
    }
    if key == "after" {
        if let Some(v) = value {
            parts.push(("after".into(), v.to_string()));
        }
    }
    let qs: Vec<String> = parts
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if qs.is_empty() {
        "/staff/".into()
    } else {
        format!("/staff/?{}", qs.join("&"))
    }
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn case_row(
    state: &AppState,
    locale: Locale,
    r: &RequestRow,
    names: &BTreeMap<String, String>,
    now: i64,
) -> serde_json::Value {
    let due = NaiveDate::parse_from_str(&r.due_date, "%Y-%m-%d").unwrap_or_else(|_| today(state));
    let days_left = crate::domain::deadline::days_left(due, today(state));
    serde_json::json!({
        "id": r.id,
        "reference": workflow::reference(&r.id),
        "kind": r.kind,
        "kind_label": label(locale, "staff.kinds", &r.kind),
        "status": r.status,
        "status_label": label(locale, "staff.statuses", &r.status),
        "received": date_of(state, r.received_at),
        "due_date": r.due_date,
        "days_left": days_left,
        "days_overdue": -days_left,
        "overdue": r.due_at < now && !r.status().is_final(),
        "extended": r.extension_months > 0,
        "assignee": r.assignee.as_ref().and_then(|a| names.get(a)).cloned().unwrap_or_default(),
        // The language replies go out in, named in the staff member's.
        "language": label(locale, "staff.languages", r.locale().as_str()),
        // Why a human is needed, in words.
        "reasons": r.reasons().iter().map(|x| label(locale, "staff.reasons", x)).collect::<Vec<_>>(),
        "open_items": [],
    })
}

/// What is still open on each case's checklists (other systems), by case:
/// the names of the unticked items in the staff member's language.
pub(super) async fn open_checklist_items(
    state: &AppState,
    locale: Locale,
) -> Result<BTreeMap<String, Vec<String>>, WorkflowError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in store::tasks::open(&state.db, 1000).await? {
        let items: Vec<store::tasks::ChecklistItem> =
            serde_json::from_str(&t.checklist).unwrap_or_default();
        out.entry(t.request_id.clone()).or_default().extend(
            items
                .iter()
                .filter(|i| !i.done)
                .map(|i| i.name.get(locale).to_string()),
        );
    }
    Ok(out)
}

/// Adds `open_items` to queue rows that have checklist work left.
fn with_open_items(
    mut rows: Vec<serde_json::Value>,
    open: &BTreeMap<String, Vec<String>>,
) -> Vec<serde_json::Value> {
    for row in rows.iter_mut() {
        if let Some(items) = row["id"].as_str().and_then(|id| open.get(id)) {
            row["open_items"] = serde_json::json!(items);
        }
    }
    rows
}

pub(super) async fn staff_names(
    state: &AppState,
) -> Result<(BTreeMap<String, String>, Vec<staff::MemberRow>), WorkflowError> {
    let members = staff::list(&state.db).await?;
    let names = members
        .iter()
        .map(|m| (m.id.clone(), m.email.clone()))
        .collect();
    Ok((names, members))
}

pub(super) async fn queue(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<QueueQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let q = query.into_inner();
    let f = fail(&state, locale);
    let now = store::now();
    let mut ctx = base(&state, &req, &session, locale, Some(&me));

    let mut filter = cases::CaseFilter {
        limit: 51,
        ..Default::default()
    };
    if let Some(k) = nonempty(&q.kind) {
        filter.kind = RequestKind::parse(k);
    }
    if let Some(s) = nonempty(&q.status) {
        filter.status = Status::parse(s);
    }
    filter.assignee = match nonempty(&q.assignee) {
        None => cases::Assignee::Anyone,
        Some("none") => cases::Assignee::Unassigned,
        Some("me") => cases::Assignee::Staff(me.id.clone()),
        Some(other) => cases::Assignee::Staff(other.to_string()),
    };
    if nonempty(&q.overdue).is_some() {
        filter.overdue_at = Some(now);
    }
    filter.open_tasks = nonempty(&q.work) == Some("checklist");
    filter.open_steps = nonempty(&q.work) == Some("systems");
    if let Some(c) = nonempty(&q.after) {
        if let Some((due, id)) = c.split_once('_') {
            if let Ok(due) = due.parse::<i64>() {
                filter.after = Some((due, id.to_string()));
            }
        }
    }
    // Look-up by request id, reference or the customer's exact address.
    if let Some(term) = nonempty(&q.q) {
        ctx.insert("q", term);
        if let Ok(u) = uuid::Uuid::parse_str(term) {
            let id = u.to_string();
            if store::requests::get(&state.db, &id)
                .await
                .map_err(|e| f(e.into()))?
                .is_some()
            {
                return Ok(see_other(format!("/staff/cases/{id}")));
            }
            ctx.insert("lookup_empty", &true);
        } else if term.contains('@') {
            match Email::parse(term) {
                Some(e) => filter.email_hash = Some(state.keys.lookup_hash(e.as_str())),
                None => {
                    ctx.insert("lookup_empty", &true);
                }
            }
        } else {
            let found = match workflow::reference_key(term) {
                Some(key) => cases::by_reference(&state.db, &key)
                    .await
                    .map_err(|e| f(e.into()))?,
                None => vec![],
            };
            if found.len() == 1 {
                return Ok(see_other(format!("/staff/cases/{}", found[0])));
            }
            ctx.insert("lookup_empty", &true);
        }
        if filter.email_hash.is_none() {
            filter.limit = 0;
        }
    }

    let (names, members) = staff_names(&state).await.map_err(&f)?;
    let rows = if filter.limit > 0 {
        cases::queue(&state.db, &filter)
            .await
            .map_err(|e| f(e.into()))?
    } else {
        vec![]
    };
    let more = rows.len() > 50;
    let page: Vec<_> = rows.iter().take(50).collect();
    let open_items = open_checklist_items(&state, locale).await.map_err(&f)?;
    let list: Vec<_> = page
        .iter()
        .map(|r| case_row(&state, locale, r, &names, now))
        .collect();
    let list = with_open_items(list, &open_items);
    if filter.email_hash.is_some() && list.is_empty() {
        ctx.insert("lookup_empty", &true);
    }
    ctx.insert("cases", &list);
    if more {
        if let Some(last) = page.last() {
            ctx.insert(
                "next",
                &href(&q, "after", Some(&format!("{}_{}", last.due_at, last.id))),
            );
        }
    }
    if filter.after.is_some() {
        ctx.insert("first", &href(&q, "after", None));
    }

    // Counts beside each filter (open cases).
    let counts = cases::open_counts_cached(&state.db, &state.queue_counts, now)
        .await
        .map_err(|e| f(e.into()))?;
    let total: i64 = counts.iter().map(|c| c.n).sum();
    let count_where = |p: &dyn Fn(&cases::CountRow) -> bool| -> i64 {
        counts.iter().filter(|c| p(c)).map(|c| c.n).sum()
    };
    let cur_kind = nonempty(&q.kind).unwrap_or("");
    let cur_status = nonempty(&q.status).unwrap_or("");
    let cur_assignee = nonempty(&q.assignee).unwrap_or("");
    let kinds: Vec<_> = RequestKind::ALL
        .iter()
        .map(|k| {
            serde_json::json!({
                "label": label(locale, "staff.kinds", k.as_str()),
                "n": count_where(&|c| c.kind == k.as_str()),
                "href": href(&q, "kind", Some(k.as_str())),
                "current": cur_kind == k.as_str(),
            })
        })
        .collect();
    let statuses: Vec<_> = [Status::Escalated, Status::Processing, Status::Completed, Status::Rejected]
        .iter()
        .map(|s| {
            serde_json::json!({
                "label": label(locale, "staff.statuses", s.as_str()),
                "n": if s.is_final() { serde_json::Value::Null } else { count_where(&|c| c.status == s.as_str()).into() },
                "href": href(&q, "status", Some(s.as_str())),
                "current": cur_status == s.as_str(),
            })
        })
        .collect();
    let mut assignees = vec![
        serde_json::json!({
            "label": crate::i18n::t(locale, "staff.queue.mine"),
            "n": count_where(&|c| c.assignee.as_deref() == Some(me.id.as_str())),
            "href": href(&q, "assignee", Some("me")),
            "current": cur_assignee == "me",
        }),
        serde_json::json!({
            "label": crate::i18n::t(locale, "staff.queue.unassigned"),
            "n": count_where(&|c| c.assignee.is_none()),
            "href": href(&q, "assignee", Some("none")),
            "current": cur_assignee == "none",
        }),
    ];
    for m in members.iter().filter(|m| m.id != me.id && m.disabled == 0) {
        assignees.push(serde_json::json!({
            "label": m.email,
            "n": count_where(&|c| c.assignee.as_deref() == Some(m.id.as_str())),
            "href": href(&q, "assignee", Some(&m.id)),
            "current": cur_assignee == m.id,
        }));
    }
    // Checklist work (other systems) on cases the customer already saw
    // completed: counted, filtered, and the most urgent shown on the default
    // page, so nobody has to open old cases to find it.
    let (tasks_n, tasks_overdue) = cases::open_task_counts(&state.db, now)
        .await
        .map_err(|e| f(e.into()))?;
    ctx.insert("tasks_n", &tasks_n);
    ctx.insert("tasks_overdue", &tasks_overdue);
    ctx.insert("tasks_on", &filter.open_tasks);
    let (steps_n, steps_failed) = crate::store::steps::unsettled_counts(&state.db)
        .await
        .map_err(|e| f(e.into()))?;
    ctx.insert("steps_n", &steps_n);
    ctx.insert("steps_failed", &steps_failed);
    ctx.insert("steps_on", &filter.open_steps);
    ctx.insert("steps_href", &href(&q, "work", Some("systems")));
    ctx.insert("tasks_href", &href(&q, "work", Some("checklist")));
    ctx.insert("tasks_all_href", &href(&q, "work", None));
    let unfiltered = nonempty(&q.kind).is_none()
        && nonempty(&q.status).is_none()
        && nonempty(&q.assignee).is_none()
        && nonempty(&q.overdue).is_none()
        && !filter.open_tasks
        && !filter.open_steps
        && filter.after.is_none()
        && filter.email_hash.is_none();
    if unfiltered && tasks_n > 0 {
        let urgent = cases::queue(
            &state.db,
            &cases::CaseFilter {
                open_tasks: true,
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| f(e.into()))?;
        let urgent: Vec<_> = urgent
            .iter()
            .map(|r| case_row(&state, locale, r, &names, now))
            .collect();
        let urgent = with_open_items(urgent, &open_items);
        ctx.insert("task_cases", &urgent);
    }
    ctx.insert("total", &total);
    ctx.insert("overdue_n", &counts.iter().map(|c| c.overdue).sum::<i64>());
    ctx.insert("overdue_href", &href(&q, "overdue", Some("1")));
    ctx.insert("overdue_on", &nonempty(&q.overdue).is_some());
    ctx.insert("kinds", &kinds);
    ctx.insert("statuses", &statuses);
    ctx.insert("assignees", &assignees);
    ctx.insert("clear_href", "/staff/");
    ctx.insert("kind_all_href", &href(&q, "kind", None));
    ctx.insert("status_all_href", &href(&q, "status", None));
    ctx.insert("assignee_all_href", &href(&q, "assignee", None));
    ctx.insert("overdue_all_href", &href(&q, "overdue", None));
    ctx.insert(
        "filtered",
        &(filter.kind.is_some()
            || filter.open_tasks
            || filter.open_steps
            || filter.status.is_some()
            || filter.overdue_at.is_some()
            || filter.assignee != cases::Assignee::Anyone),
    );
    Ok(render(&state, StatusCode::OK, "staff/queue.html", &ctx))
}
