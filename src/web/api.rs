//! JSON API v1 (CONTRACT.md): the same workflow functions as the portal.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use super::errors::{locale_of, ApiError};
use crate::{
    connector::KnowledgeClaim,
    domain::{Locale, RequestKind},
    workflow::{
        change_email, delete, intake, object, question,
        verification::{self, RequestView},
        WorkflowError,
    },
    AppState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(super::errors::json_error),
    )
    .route("/openapi.json", web::get().to(openapi))
    .route("/requests", web::post().to(create))
    .route("/requests/{id}", web::get().to(get))
    .route("/requests/{id}/verify", web::post().to(verify))
    .route("/requests/{id}/resend", web::post().to(resend))
    .route("/requests/{id}/submit", web::post().to(submit))
    .route("/requests/{id}/archive", web::get().to(archive))
    .route("/change-email/fallback", web::post().to(fallback))
    .route(
        "/requests/{id}/verify-new-email",
        web::post().to(verify_new_email),
    )
    .route(
        "/requests/{id}/collision-choice",
        web::post().to(collision_choice),
    );
}

type ApiResult = Result<HttpResponse, ApiError>;

#[derive(Deserialize, ToSchema)]
pub struct CreateBody {
    /// export | delete | change_email | object | question
    kind: String,
    email: String,
    /// nl | sv | en
    locale: String,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    id: String,
    status: &'static str,
}

#[utoipa::path(post, path = "/api/v1/requests", request_body = CreateBody,
    responses((status = 202, body = Created, description = "A code was emailed; identical whether or not the address has an account"),
              (status = 422, description = "invalid_input or kind_unavailable (problem+json)"),
              (status = 429, description = "rate_limited, with Retry-After")))]
async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateBody>,
) -> ApiResult {
    let fallback = locale_of(&req);
    let locale = Locale::parse(&body.locale).ok_or(ApiError(
        WorkflowError::Invalid {
            field: "locale",
            key: "errors.invalid_locale",
        },
        fallback,
    ))?;
    let kind = RequestKind::parse(&body.kind).ok_or(ApiError(
        WorkflowError::Invalid {
            field: "kind",
            key: "errors.invalid_kind",
        },
        locale,
    ))?;
    let started = intake::start(&state, kind, &body.email, locale, intake::Channel::Api)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Accepted().json(Created {
        id: started.id,
        status: "awaiting_verification",
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyBody {
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifiedBody {
    status: &'static str,
    /// Bearer token for the following calls; shown once.
    token: String,
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/verify", request_body = VerifyBody,
    responses((status = 200, body = VerifiedBody),
              (status = 422, description = "invalid_code with attempts_left"),
              (status = 429, description = "too_many_attempts: the code is burnt"),
              (status = 410, description = "code_expired")))]
async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<VerifyBody>,
) -> ApiResult {
    let locale = request_locale(&state, &path, &req).await;
    let v = verification::check_code(&state, &path, &body.code)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Ok().json(VerifiedBody {
        status: "verified",
        token: v.token,
    }))
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/resend",
    responses((status = 202, description = "A new code was emailed"), (status = 429, description = "rate_limited")))]
async fn resend(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult {
    let locale = request_locale(&state, &path, &req).await;
    verification::resend(&state, &path)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Accepted().json(json!({"status": "awaiting_verification"})))
}

/// The request a bearer token opens, and the language to answer in.
async fn authorized(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<(crate::store::requests::RequestRow, Locale), ApiError> {
    let fallback = locale_of(req);
    let token = bearer(req).ok_or(ApiError(WorkflowError::Unauthorized, fallback))?;
    let row = verification::authorize_token(state, id, token)
        .await
        .map_err(|e| ApiError(e, fallback))?;
    let locale = row.locale();
    Ok((row, locale))
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Errors about a request are explained in that request's language.
async fn request_locale(state: &AppState, id: &str, req: &HttpRequest) -> Locale {
    match verification::get(state, id).await {
        Ok(r) => r.locale(),
        Err(_) => locale_of(req),
    }
}

#[utoipa::path(get, path = "/api/v1/requests/{id}", security(("bearer" = [])),
    responses((status = 200, body = RequestView), (status = 401, description = "unauthorized")))]
async fn get(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> ApiResult {
    let locale = locale_of(&req);
    let token = bearer(&req).ok_or(ApiError(WorkflowError::Unauthorized, locale))?;
    let row = verification::authorize_token(&state, &path, token)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Ok().json(RequestView::from(&row)))
}

#[derive(Deserialize, ToSchema)]
pub struct SubmitBody {
    /// question: the customer's question or complaint
    #[serde(default)]
    message: Option<String>,
    /// delete: the account's postcode as the customer states it
    #[serde(default)]
    postcode: Option<String>,
    /// delete: the account's house number as the customer states it
    #[serde(default)]
    house_number: Option<String>,
    /// delete: explicit consent to permanent deletion
    #[serde(default)]
    confirm: Option<bool>,
    /// delete, for an address without an account (which answers 422 `no_account`
    /// otherwise): remove the address from the company's other systems
    /// (newsletter, mailbox, recordings); completes with outcome `other_systems`
    #[serde(default)]
    other_systems_only: Option<bool>,
    /// change_email: the new login address (a code is sent there)
    #[serde(default)]
    new_email: Option<String>,
    /// object: ids of the company's objection purposes to stop (see GET /{lang}/privacy)
    #[serde(default)]
    purposes: Option<Vec<String>>,
    /// object: the customer's reasons; required for purposes based on legitimate interest
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/submit", request_body = SubmitBody, security(("bearer" = [])),
    responses((status = 200, body = RequestView), (status = 422, description = "invalid_input / kind_unavailable"),
              (status = 403, description = "not_verified")))]
async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<SubmitBody>,
) -> ApiResult {
    let (row, locale) = authorized(&state, &req, &path).await?;
    let row = match row.kind() {
        RequestKind::Question => {
            question::submit(&state, &row.id, body.message.as_deref().unwrap_or(""))
                .await
                .map_err(|e| ApiError(e, locale))?
        }
        RequestKind::Delete => {
            let input = delete::DeleteInput {
                postcode: body.postcode.as_deref().unwrap_or(""),
                house_number: body.house_number.as_deref().unwrap_or(""),
                confirm: body.confirm.unwrap_or(false),
                other_systems_only: body.other_systems_only.unwrap_or(false),
            };
            delete::submit(&state, &row.id, &input)
                .await
                .map_err(|e| ApiError(e, locale))?
        }
        RequestKind::ChangeEmail => {
            change_email::submit_new_email(&state, &row.id, body.new_email.as_deref().unwrap_or(""))
                .await
                .map_err(|e| ApiError(e, locale))?
        }
        RequestKind::Object => {
            let input = object::ObjectInput {
                purposes: body.purposes.as_deref().unwrap_or_default(),
                reason: body.reason.as_deref(),
            };
            object::submit(&state, &row.id, &input)
                .await
                .map_err(|e| ApiError(e, locale))?
        }
        RequestKind::Export => {
            let row = crate::workflow::export::submit(state.clone().into_inner(), &row.id)
                .await
                .map_err(|e| ApiError(e, locale))?;
            // The archive is built in the background (CONTRACT: 202 processing).
            let status = if row.status() == crate::domain::Status::Processing {
                actix_web::http::StatusCode::ACCEPTED
            } else {
                actix_web::http::StatusCode::OK
            };
            return Ok(HttpResponse::build(status).json(RequestView::from(&row)));
        }
    };
    Ok(HttpResponse::Ok().json(RequestView::from(&row)))
}

#[utoipa::path(get, path = "/api/v1/requests/{id}/archive", security(("bearer" = [])),
    responses((status = 200, description = "the zip archive", content_type = "application/zip"),
              (status = 404, description = "not_found: no archive was made for this request (no data held under the address, or it was handed to staff)"),
              (status = 409, description = "export_processing: the archive is still being prepared; ask again after `Retry-After` seconds (the mail with the link follows)"),
              (status = 410, description = "download_expired: the 24-hour download has expired and the archive was deleted")))]
async fn archive(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult {
    let (row, locale) = authorized(&state, &req, &path).await?;
    if row.kind() != RequestKind::Export {
        return Err(ApiError(WorkflowError::NotFound, locale));
    }
    let archive = crate::workflow::export::available(&state, &row.id)
        .await
        .map_err(|e| ApiError(e, locale))?;
    crate::workflow::export::record_download(&state, &row.id, "api")
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(super::portal::stream_archive(&state, &row, &archive))
}

/// A collision answer names the two ways out (SPEC, change_email).
fn change_view(row: &crate::store::requests::RequestRow) -> serde_json::Value {
    let mut v = serde_json::to_value(RequestView::from(row)).expect("view serialises");
    if row.reasons().iter().any(|r| r == "email_in_use") {
        v["options"] = json!([
            {"option": "A", "effect": "delete_old_account_keep_new"},
            {"option": "B", "effect": "delete_new_account_move_address_to_old"}
        ]);
        if let Some(c) = change_email::recorded_choice(row) {
            v["choice"] = json!(c.as_str());
        }
    }
    v
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/verify-new-email", request_body = VerifyBody, security(("bearer" = [])),
    responses((status = 200, description = "completed, or escalated with reason email_in_use and the two options"),
              (status = 422, description = "invalid_code with attempts_left")))]
async fn verify_new_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<VerifyBody>,
) -> ApiResult {
    let (row, locale) = authorized(&state, &req, &path).await?;
    let row = change_email::verify_new_email(&state, &row.id, &body.code)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Ok().json(change_view(&row)))
}

#[derive(Deserialize, ToSchema)]
pub struct ChoiceBody {
    /// A: delete the old account, keep the new one; B: delete the new account, move the new address to the old one
    option: String,
    /// Postcode of the account the chosen option deletes (A: the old one, B: the other one)
    #[serde(default)]
    postcode: String,
    /// House number of the account the chosen option deletes
    #[serde(default)]
    house_number: String,
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/collision-choice", request_body = ChoiceBody, security(("bearer" = [])),
    responses((status = 200, description = "escalated: a human carries out the choice"),
              (status = 422, description = "details_mismatch with attempts_left: postcode and house number of the account to delete")))]
async fn collision_choice(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ChoiceBody>,
) -> ApiResult {
    let (row, locale) = authorized(&state, &req, &path).await?;
    let choice = change_email::Choice::parse(&body.option).ok_or(ApiError(
        WorkflowError::Invalid {
            field: "option",
            key: "errors.choice_missing",
        },
        locale,
    ))?;
    let claim = KnowledgeClaim {
        postcode: &body.postcode,
        house_number: &body.house_number,
    };
    let row = change_email::choose(&state, &row.id, choice, &claim)
        .await
        .map_err(|e| ApiError(e, locale))?;
    Ok(HttpResponse::Ok().json(change_view(&row)))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "privacy-portal API",
        version = "1",
        description = "Self-service GDPR requests (CONTRACT.md). Errors are application/problem+json with a stable `code`."
    ),
    paths(
        create,
        verify,
        resend,
        get,
        submit,
        verify_new_email,
        collision_choice,
        archive,
        fallback,
        super::staff_api::list,
        super::staff_api::case,
        super::staff_api::action
    ),
    components(schemas(
        CreateBody,
        Created,
        VerifyBody,
        VerifiedBody,
        SubmitBody,
        ChoiceBody,
        FallbackBody,
        RequestView,
        crate::workflow::cases::Action
    ))
)]
pub struct ApiDoc;

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[derive(Deserialize, ToSchema)]
pub struct FallbackBody {
    /// the account's (lost) address
    email: String,
    /// a code from the authenticator app, or a recovery code
    code: String,
    postcode: String,
    house_number: String,
    new_email: String,
    locale: String,
}

#[utoipa::path(post, path = "/api/v1/change-email/fallback", request_body = FallbackBody,
    responses((status = 200, description = "verified: a change_email request awaiting the new address's code, with its bearer token"),
              (status = 202, description = "not everything could be confirmed (the same answer whatever was wrong): a change_email case for support was started at the new address, which gets a code"),
              (status = 429, description = "too_many_attempts")))]
async fn fallback(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<FallbackBody>,
) -> ApiResult {
    let locale = Locale::parse(&body.locale).unwrap_or_else(|| locale_of(&req));
    let client = super::client_ip(&req).to_string();
    let input = crate::workflow::authenticator::FallbackInput {
        email: &body.email,
        code: &body.code,
        postcode: &body.postcode,
        house_number: &body.house_number,
        new_email: &body.new_email,
        locale,
        client: &client,
    };
    match crate::workflow::authenticator::fallback(&state, &input)
        .await
        .map_err(|e| ApiError(e, locale))?
    {
        crate::workflow::authenticator::FallbackOutcome::Verified { id, token } => {
            Ok(HttpResponse::Ok()
                .json(json!({"id": id, "status": "awaiting_new_email", "token": token})))
        }
        crate::workflow::authenticator::FallbackOutcome::ForSupport { id } => {
            Ok(HttpResponse::Accepted()
                .json(json!({"id": id, "status": "awaiting_verification", "kind": "change_email"})))
        }
    }
}
