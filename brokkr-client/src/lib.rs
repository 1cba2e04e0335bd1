//! The agent's HTTP client: [`BrokerApi`] over the broker's API, built without the
//! server stack (no axum, utoipa or prometheus): reqwest and `brokkr-core` only. The
//! bodies it sends and reads are the server's own (`brokkr_core::api`).
//!
//! Every call carries the agent's key as a bearer token and has a timeout. Failures
//! that may pass — connection errors, timeouts, 5xx — are retried with jittered
//! exponential backoff, waiting at least as long as a `Retry-After` asks; 4xx answers
//! are never retried, and work-order claims and completions (which carry no token) are
//! retried only when the connection failed (the same request would be refused again). Answers map back to
//! [`brokkr_core::Error`] variants, so agent code handles both [`BrokerApi`]
//! implementations alike.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::Duration;

use async_trait::async_trait;
use brokkr_core::Error;
use brokkr_core::api::{
    BrokerApi, ClaimBody, CompleteBody, PendingBody, StatusBody, TargetStateBody, WorkOrdersBody,
};
use brokkr_core::broker::{HealthReportResult, StatusReportResult};
use brokkr_core::diagnostics::PendingDiagnostic;
use brokkr_core::error::FieldError;
use brokkr_core::ids::{AgentId, DiagnosticId, WorkOrderId};
use brokkr_core::model::{
    DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome, HealthReport, Heartbeat, WorkOrder,
};
use brokkr_core::retry;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker URL does not parse or is not http(s).
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, say).
    #[error("HTTP client setup failed: {0}")]
    Setup(#[source] reqwest::Error),
    /// A setting is out of range.
    #[error("invalid client setting: {0}")]
    InvalidSetting(&'static str),
}

/// Where the broker is, who the agent is, and how patient to be.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the broker, e.g. `https://broker.example:3000` (the API lives under
    /// `/api/v1`).
    pub base_url: String,
    /// The agent this client speaks for.
    pub agent_id: AgentId,
    /// The agent's key.
    pub pak: String,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// First retry delay; doubles per retry, with jitter.
    pub backoff: Duration,
    /// Longest retry delay. A `Retry-After` beyond it ends the retries.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("agent_id", &self.agent_id)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults: 10 s per request, 5 s to connect, 4 attempts, backoff from 200 ms to 5 s.
    pub fn new(base_url: impl Into<String>, agent_id: AgentId, pak: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            agent_id,
            pak: pak.into(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The broker over HTTP, for one agent.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api: String,
    config: ClientConfig,
}

/// One failed try: what to report, and whether another try may help and when.
struct Failure {
    error: Error,
    retry: bool,
    retry_after: Option<Duration>,
    /// The request may have reached the broker (anything but a failed connect).
    reached: bool,
}

impl Client {
    /// A client for `config`; checks the URL.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: config.base_url.clone(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(&base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if config.max_attempts == 0 {
            return Err(ClientError::InvalidSetting(
                "max_attempts must be at least 1",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // The broker closes connections idle for its header read timeout (10 s);
            // dropping them sooner here keeps a request from racing that close.
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("brokkr-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Self {
            http,
            api: format!("{base}/api/v1"),
            config,
        })
    }

    fn agent_path(&self, rest: &str) -> String {
        format!("/agents/{}/{rest}", self.config.agent_id)
    }

    /// Sends one call with retries; `T` is the answer's JSON (or `()` for 204).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, Error> {
        self.send(method, path, body, true).await
    }

    /// [`Self::call`] for a call that must not run twice: not retried once it may have
    /// reached the broker (only connection failures are).
    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, Error> {
        self.send(method, path, body, false).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
        idempotent: bool,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.api);
        let mut attempt = 1;
        loop {
            let failure = match self.try_once(method.clone(), &url, body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            let delay = retry::exponential(
                self.config.backoff,
                self.config.max_backoff,
                attempt - 1,
                retry::jitter(),
            );
            let wait = failure.retry_after.map_or(delay, |after| after.max(delay));
            let give_up = !failure.retry
                || (!idempotent && failure.reached)
                || attempt >= self.config.max_attempts
                || wait > self.config.max_backoff;
            if give_up {
                return Err(failure.error);
            }
            tracing::debug!(%url, attempt, error = %failure.error, ?wait, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn try_once<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, Failure> {
        let mut request = self.http.request(method, url).bearer_auth(&self.config.pak);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Failure {
            error: Error::Unavailable(transport_error(&e)),
            retry: true,
            retry_after: None,
            reached: !e.is_connect(),
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| Failure {
            error: Error::Unavailable(transport_error(&e)),
            retry: true,
            retry_after,
            reached: true,
        })?;
        if status.is_success() {
            let text = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes
            };
            return serde_json::from_slice(text).map_err(|e| Failure {
                error: Error::Unavailable(format!("unreadable answer from the broker: {e}")),
                retry: false,
                retry_after: None,
                reached: true,
            });
        }
        Err(Failure {
            error: error_of(status, &bytes, url),
            retry: status.is_server_error(),
            retry_after,
            reached: true,
        })
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the broker did not answer in time".to_owned()
    } else if e.is_connect() {
        "the broker cannot be reached".to_owned()
    } else {
        format!("talking to the broker failed: {e}")
    }
}

/// The problem+json body, as far as the client needs it.
#[derive(serde::Deserialize, Default)]
struct ProblemBody {
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

fn error_of(status: StatusCode, body: &[u8], url: &str) -> Error {
    let problem: ProblemBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = if problem.detail.is_empty() {
        status.to_string()
    } else {
        problem.detail
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized,
        StatusCode::FORBIDDEN => Error::Forbidden(detail),
        StatusCode::NOT_FOUND => Error::NotFound {
            kind: "resource",
            id: url.rsplit("/api/v1").next().unwrap_or(url).to_owned(),
        },
        StatusCode::CONFLICT => Error::Conflict(detail),
        StatusCode::GONE => Error::Gone(detail),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => Error::Invalid(if problem.errors.is_empty() {
            vec![FieldError::new("body", detail)]
        } else {
            problem.errors
        }),
        // Rate limited or failing: the agent keeps its data and tries on its next cycle.
        _ => Error::Unavailable(format!("{status}: {detail}")),
    }
}

/// Any JSON answer whose content the caller does not need.
#[derive(serde::Deserialize)]
struct Ignored {}

const NO_BODY: Option<&()> = None;

#[async_trait]
impl BrokerApi for Client {
    fn agent_id(&self) -> AgentId {
        self.config.agent_id
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), Error> {
        self.call::<Option<Ignored>>(Method::POST, &self.agent_path("heartbeat"), Some(beat))
            .await
            .map(|_| ())
    }

    async fn target_state(&self) -> Result<Vec<DeploymentObject>, Error> {
        let answer: TargetStateBody = self
            .call(Method::GET, &self.agent_path("target-state"), NO_BODY)
            .await?;
        Ok(answer.deployment_objects)
    }

    async fn report_deployment_status(
        &self,
        events: &[DeploymentStatusEvent],
    ) -> Result<StatusReportResult, Error> {
        self.call(
            Method::POST,
            &self.agent_path("deployment-status"),
            Some(&StatusBody {
                events: events.to_vec(),
            }),
        )
        .await
    }

    async fn report_health(&self, report: &HealthReport) -> Result<HealthReportResult, Error> {
        self.call(
            Method::PATCH,
            &self.agent_path("health-status"),
            Some(report),
        )
        .await
    }

    async fn pending_diagnostics(&self) -> Result<Vec<PendingDiagnostic>, Error> {
        let answer: PendingBody = self
            .call(
                Method::GET,
                &self.agent_path("diagnostics/pending"),
                NO_BODY,
            )
            .await?;
        Ok(answer.requests)
    }

    async fn claim_diagnostic(&self, id: DiagnosticId, token: &str) -> Result<(), Error> {
        self.call::<Ignored>(
            Method::POST,
            &format!("/diagnostics/{id}/claim"),
            Some(&ClaimBody {
                claim_token: Some(token.to_owned()),
            }),
        )
        .await
        .map(|_| ())
    }

    async fn post_diagnostic_result(
        &self,
        id: DiagnosticId,
        outcome: &DiagnosticOutcome,
    ) -> Result<(), Error> {
        self.call::<Ignored>(
            Method::POST,
            &format!("/diagnostics/{id}/result"),
            Some(outcome),
        )
        .await
        .map(|_| ())
    }

    async fn open_work_orders(&self) -> Result<Vec<WorkOrder>, Error> {
        let answer: WorkOrdersBody = self
            .call(
                Method::GET,
                &self.agent_path("work-orders/pending"),
                NO_BODY,
            )
            .await?;
        Ok(answer.work_orders)
    }

    async fn claim_work_order(&self, id: WorkOrderId) -> Result<WorkOrder, Error> {
        // A claim carries no token: a blind retry could meet its own claim as a conflict.
        self.call_once(Method::POST, &format!("/work-orders/{id}/claim"), NO_BODY)
            .await
    }

    async fn complete_work_order(
        &self,
        id: WorkOrderId,
        success: bool,
    ) -> Result<WorkOrder, Error> {
        self.call_once(
            Method::POST,
            &format!("/work-orders/{id}/complete"),
            Some(&CompleteBody { success }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_map_to_core_errors() {
        let body = br#"{"type":"about:blank","title":"Unprocessable","status":422,"detail":"bad","errors":[{"field":"x","reason":"y"}]}"#;
        assert_eq!(
            error_of(StatusCode::UNPROCESSABLE_ENTITY, body, "u"),
            Error::Invalid(vec![FieldError::new("x", "y")])
        );
        assert_eq!(
            error_of(StatusCode::UNAUTHORIZED, b"", "u"),
            Error::Unauthorized
        );
        assert!(matches!(
            error_of(StatusCode::CONFLICT, br#"{"detail":"taken"}"#, "u"),
            Error::Conflict(d) if d == "taken"
        ));
        assert!(matches!(
            error_of(StatusCode::TOO_MANY_REQUESTS, b"not json", "u"),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_must_be_http() {
        let id = AgentId::new();
        assert!(Client::new(ClientConfig::new("ftp://x", id, "k")).is_err());
        assert!(Client::new(ClientConfig::new("not a url", id, "k")).is_err());
        assert!(Client::new(ClientConfig::new("http://127.0.0.1:1/", id, "k")).is_ok());
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let config = ClientConfig::new("http://x", AgentId::new(), "brokkr_secret_key");
        assert!(!format!("{config:?}").contains("brokkr_secret_key"));
    }
}
