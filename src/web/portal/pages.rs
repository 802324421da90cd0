//! Pages that depend only on the company file and the language (the landing
//! page, the privacy notice, the guidance pages) are rendered once, at the
//! first request, and served from memory after that: they were the slowest
//! anonymous pages, and the company file cannot change while the process
//! runs. A query string (`?x=…` lands in the language switcher's links)
//! takes the normal, rendered path.

use std::{collections::HashMap, sync::OnceLock};

use actix_web::{web::Bytes, HttpRequest, HttpResponse};

use crate::{domain::Locale, AppState};

/// Path → rendered page.
#[derive(Default)]
pub struct Pages(OnceLock<HashMap<String, Bytes>>);

fn build(state: &AppState) -> HashMap<String, Bytes> {
    let mut views = Vec::new();
    for locale in Locale::ALL {
        let l = locale.as_str();
        views.push((format!("/{l}/"), super::landing_view(state, locale, "/")));
        views.push((
            format!("/{l}/privacy"),
            super::objection::privacy_view(state, locale, "/privacy"),
        ));
        views.push((
            format!("/{l}/help"),
            super::objection::help_index_view(state, locale, "/help"),
        ));
        for g in &state.settings.company.guidance {
            let rest = format!("/help/{}", g.id);
            if let Some(view) = super::objection::help_view(state, locale, &g.id, &rest) {
                views.push((format!("/{l}{rest}"), view));
            }
        }
    }
    views
        .into_iter()
        .filter_map(
            |(path, (template, ctx))| match state.tera.render(template, &ctx) {
                Ok(html) => Some((path, Bytes::from(html))),
                Err(e) => {
                    // Rendered per request instead, which logs the same error.
                    tracing::error!(error = ?e, template, "page not cached");
                    None
                }
            },
        )
        .collect()
}

/// The cached page for this request, if it is one of them.
pub fn cached(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    if !req.query_string().is_empty() {
        return None;
    }
    let page = state.pages.0.get_or_init(|| build(state)).get(req.path())?;
    Some(
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page.clone()),
    )
}
