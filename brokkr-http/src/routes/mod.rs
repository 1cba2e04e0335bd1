//! Handlers, one module per area of the API. Each is a thin translation: extract,
//! call the broker, shape the answer.

pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod diagnostics;
pub(crate) mod events;
pub(crate) mod observe;
pub(crate) mod probes;
pub(crate) mod reads;
#[cfg(feature = "webhooks")]
pub(crate) mod webhooks;
