//! The OpenAPI 3.1 document, generated from the handlers' annotations (collected with
//! their routes in `routes::api`) and the types' `ToSchema` derives, served at `/openapi.json` with Swagger UI at `/docs`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's info and security scheme; the operations are added by [`document`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Brokkr broker API",
        description = "Fleet health for multi-cluster Kubernetes: agents report, operators ask. \
                       Errors are application/problem+json.",
    ),
    modifiers(&BearerKeys),
)]
pub struct ApiDoc;

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

/// The document as served: the info and security scheme of [`ApiDoc`] plus every
/// operation the routes declare (each handler's `#[utoipa::path]`, registered once
/// with its route).
pub fn document() -> utoipa::openapi::OpenApi {
    let large = axum::extract::DefaultBodyLimit::disable();
    utoipa_axum::router::OpenApiRouter::<crate::AppState>::with_openapi(ApiDoc::openapi())
        .merge(crate::routes::api(large))
        .into_openapi()
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
/// URL and `/docs` redirects relatively to `docs/`, so both work wherever the host nests
/// them (Swagger UI's own router redirects to the absolute `/docs/`, which under a
/// prefix leaves the broker).
pub(crate) fn swagger<S: Clone + Send + Sync + 'static>(prefix: &str) -> axum::Router<S> {
    use axum::routing::get;
    let document = std::sync::Arc::new(document_under(prefix));
    let config = std::sync::Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"]));
    let page = {
        let config = config.clone();
        move |tail: Option<axum::extract::Path<String>>| {
            let config = config.clone();
            async move { swagger_file(tail.map(|t| t.0).as_deref().unwrap_or(""), config) }
        }
    };
    axum::Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        )
        .route(
            "/docs",
            get(|| async { axum::response::Redirect::permanent("docs/") }),
        )
        .route("/docs/", get(page.clone()))
        .route("/docs/{*rest}", get(page))
}

/// One file of the vendored Swagger UI, its initializer pointed at our document.
fn swagger_file(
    path: &str,
    config: std::sync::Arc<utoipa_swagger_ui::Config<'static>>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match utoipa_swagger_ui::serve(path, config) {
        Ok(Some(file)) => {
            let mut response = (
                [(header::CONTENT_TYPE, file.content_type)],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped {
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        Ok(None) => {
            crate::problem::ApiError::new(StatusCode::NOT_FOUND, "no such page").into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "Swagger UI file");
            crate::problem::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                .into_response()
        }
    }
}
