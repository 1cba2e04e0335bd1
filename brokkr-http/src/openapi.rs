//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types'
//! `ToSchema` derives, served at `/openapi.json` with Swagger UI at `/docs`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[cfg(feature = "webhooks")]
use crate::routes::webhooks;
use crate::routes::{agent, catalog, diagnostics, events, reads};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Brokkr broker API",
        description = "Fleet health for multi-cluster Kubernetes: agents report, operators ask. \
                       Errors are application/problem+json.",
    ),
    paths(
        catalog::register_agent,
        catalog::list_agents,
        catalog::get_agent,
        catalog::delete_agent,
        catalog::rotate_pak,
        catalog::revoke_pak,
        catalog::create_stack,
        catalog::add_deployment_object,
        catalog::get_deployment_object,
        catalog::target,
        agent::heartbeat,
        agent::target_state,
        agent::deployment_status,
        agent::health_status,
        agent::pending_work_orders,
        agent::create_work_order,
        agent::claim_work_order,
        agent::complete_work_order,
        reads::object_health,
        reads::stack_health,
        reads::agent_health,
        reads::operational_status,
        reads::queue_status,
        reads::fleet_summary,
        diagnostics::request,
        diagnostics::get,
        diagnostics::pending,
        diagnostics::claim,
        diagnostics::result,
        events::stream_events,
    ),
    modifiers(&BearerKeys),
)]
pub struct ApiDoc;

/// The webhook subscription routes (feature `webhooks`), merged into [`ApiDoc`].
#[cfg(feature = "webhooks")]
#[derive(OpenApi)]
#[openapi(paths(webhooks::register, webhooks::list, webhooks::remove))]
struct WebhooksDoc;

/// Declares the bearer scheme the paths' `security` refers to.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("PAK")
                    .description(Some("brokkr_<role>_<key>"))
                    .build(),
            ),
        );
    }
}

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    #[allow(unused_mut)] // merged into only with feature `webhooks`
    let mut document = ApiDoc::openapi();
    #[cfg(feature = "webhooks")]
    document.merge(WebhooksDoc::openapi());
    document
}

/// The document for routes a host nests under `prefix` (`""`: at the root): its server
/// URL is the prefix, so clients generated from it and Swagger UI's "try it out" call
/// the right paths.
pub fn document_under(prefix: &str) -> utoipa::openapi::OpenApi {
    let mut document = document();
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        document.servers = Some(vec![utoipa::openapi::Server::new(prefix)]);
    }
    document
}

/// `/openapi.json` and Swagger UI at `/docs/`. The UI loads the document from a relative
/// URL, so it works wherever the host nests it.
pub(crate) fn swagger(prefix: &str) -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/openapi.json", document_under(prefix))
        .config(utoipa_swagger_ui::Config::new(["../openapi.json"]))
}
