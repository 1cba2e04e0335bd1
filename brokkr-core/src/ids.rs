//! Typed identifiers.
//!
//! Each id is a UUID newtype so an agent id can never be passed where a deployment object id
//! is expected. New ids are UUIDv7: time-ordered, so rows created together sit together in
//! indexes and cursor pagination by id follows creation order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// Identifies one agent (one cluster).
    AgentId
);
id_type!(
    /// Identifies a stack: a named group of deployment objects.
    StackId
);
id_type!(
    /// Identifies one deployment object (one versioned manifest bundle of a stack).
    DeploymentObjectId
);
id_type!(
    /// Identifies a work order sent to one agent.
    WorkOrderId
);
id_type!(
    /// Identifies one diagnostics request.
    DiagnosticId
);
id_type!(
    /// Identifies one webhook subscription.
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = AgentId::new();
        let parsed: AgentId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = DiagnosticId::new();
        let b = DiagnosticId::new();
        assert!(a < b);
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-a-uuid".parse::<StackId>().is_err());
    }
}
