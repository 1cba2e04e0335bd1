//! Extractors whose rejections are problem documents, and the caller's identity.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use brokkr_core::Error;
use brokkr_core::auth::Principal;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::ApiError;

/// A JSON object body; malformed JSON is 400, wrong types (and anything but an object)
/// 422, a missing content type 415, an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(not_json());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        require_object(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "expected `Content-Type: application/json`",
    )
}

/// Every body of this API is a JSON object in UTF-8. serde would also read a struct from
/// an array of its fields (`[]` as an empty report), and skips the bytes of fields it
/// ignores without checking them: refuse both instead of guessing.
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body is not valid UTF-8",
        ));
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        )),
    }
}

/// A JSON body that may be absent: an empty body reads as the default.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !is_json {
            return Err(not_json());
        }
        require_object(&bytes)?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = T::deserialize(&mut deserializer)
            .and_then(|v| deserializer.end().map(|()| v))
            .map_err(|e| {
                let status = if e.is_data() {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError::new(status, format!("invalid JSON body: {e}"))
            })?;
        Ok(Self(value))
    }
}

/// Path parameters; a malformed id is 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Query parameters; malformed ones are 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The authenticated caller, from `Authorization: Bearer <PAK>`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        // No key at all is a client that forgot it, not a guesser: plain 401.
        let Some(key) = key else {
            return Err(Error::Unauthorized.into());
        };
        let too_many = |wait: std::time::Duration| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications; wait before trying again",
            )
            .retry_after(wait.as_secs().max(1))
        };
        // An address over its limit gets no store round trip: only a key known in
        // memory (the admin's, or an agent key verified recently) is served, so a
        // guesser costs the broker a hash, and agents behind the same NAT address keep
        // working.
        // (One store lookup a second is still allowed from it, so an agent whose cached
        // key expired is not locked out by a neighbour guessing.)
        if let Some(wait) = state.limiter.address_blocked(address) {
            if let Some(principal) = state.broker.authenticate_cached(key) {
                return Ok(Self(principal));
            }
            if !state.limiter.lookup_while_blocked(address) {
                return Err(too_many(wait));
            }
        }
        let key_id = crate::ratelimit::key_id(key);
        if let Some(wait) = state.limiter.key_blocked(address, key_id) {
            return Err(too_many(wait));
        }
        match state.broker.authenticate(key).await {
            Ok(principal) => {
                // The request span says who called, by kind only (never the key).
                let kind = match principal {
                    Principal::Admin => "admin",
                    Principal::Agent(_) => "agent",
                };
                tracing::Span::current().record("principal", kind);
                Ok(Self(principal))
            }
            Err(Error::Unauthorized) => {
                state.limiter.failed(address, key_id);
                match state.limiter.address_blocked(address) {
                    Some(wait) => Err(too_many(wait)),
                    None => Err(Error::Unauthorized.into()),
                }
            }
            Err(other) => Err(other.into()),
        }
    }
}
