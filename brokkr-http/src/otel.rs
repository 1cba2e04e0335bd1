//! OpenTelemetry export (feature `otel`): the broker's tracing spans — one per request,
//! with route, request id and principal kind — sent to an OTLP/HTTP collector.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//! # fn main() -> Result<(), brokkr_http::otel::OtelError> {
//! let (otel, guard) = brokkr_http::otel::otlp_layer("http://collector:4318", "brokkr-broker")?;
//! tracing_subscriber::registry().with(otel).init();
//! // ... serve ...
//! guard.shutdown(); // flushes what is still buffered
//! # Ok(()) }
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up OTLP export: {0}")]
pub struct OtelError(String);

/// Keeps the exporter running; [`OtelGuard::shutdown`] (or dropping it) flushes the
/// spans still buffered.
pub struct OtelGuard {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelGuard").finish_non_exhaustive()
    }
}

impl OtelGuard {
    /// Flushes and stops the exporter (blocks until the collector answered or timed out).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "OTLP exporter did not shut down cleanly");
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tracing layer exporting spans in batches over OTLP/HTTP (protobuf) to `endpoint`
/// (e.g. `http://collector:4318`; spans go to `<endpoint>/v1/traces`), as service
/// `service_name`.
pub fn otlp_layer<S>(
    endpoint: &str,
    service_name: &str,
) -> Result<(impl Layer<S> + use<S>, OtelGuard), OtelError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| OtelError(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("brokkr");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((
        layer,
        OtelGuard {
            provider: Some(provider),
        },
    ))
}
