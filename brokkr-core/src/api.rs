//! The broker as one agent sees it: [`BrokerApi`], and [`LocalBroker`], its in-process
//! implementation over [`Broker`] (the HTTP implementation is `brokkr_client::Client`),
//! and the bodies of the agent's routes that both sides share.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::broker::{Broker, HealthReportResult, StatusReportResult};
use crate::diagnostics::PendingDiagnostic;
use crate::error::Result;
use crate::ids::{AgentId, DiagnosticId, WorkOrderId};
use crate::model::{
    DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome, HealthReport, Heartbeat, WorkOrder,
};
use crate::store::Store;

/// Every call an agent makes to its broker, on behalf of one agent.
///
/// Errors follow [`crate::Error`]: `Unavailable` means "try again later" (the agent
/// keeps what it wanted to send); anything else means the broker refused this input.
#[async_trait]
pub trait BrokerApi: Send + Sync {
    /// The agent this API speaks for.
    fn agent_id(&self) -> AgentId;

    /// Sends a heartbeat.
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<()>;

    /// The desired set: the latest object of every stack the agent targets.
    async fn target_state(&self) -> Result<Vec<DeploymentObject>>;

    /// Reports reconcile attempts.
    async fn report_deployment_status(
        &self,
        events: &[DeploymentStatusEvent],
    ) -> Result<StatusReportResult>;

    /// Reports health verdicts.
    async fn report_health(&self, report: &HealthReport) -> Result<HealthReportResult>;

    /// Diagnostics requests the agent may claim.
    async fn pending_diagnostics(&self) -> Result<Vec<PendingDiagnostic>>;

    /// Claims a request; a retry with the same `token` succeeds again.
    async fn claim_diagnostic(&self, id: DiagnosticId, token: &str) -> Result<()>;

    /// Posts the result of a claimed request; an identical retry succeeds again.
    async fn post_diagnostic_result(
        &self,
        id: DiagnosticId,
        outcome: &DiagnosticOutcome,
    ) -> Result<()>;

    /// Pending and claimed work orders.
    async fn open_work_orders(&self) -> Result<Vec<WorkOrder>>;

    /// Claims a work order.
    async fn claim_work_order(&self, id: WorkOrderId) -> Result<WorkOrder>;

    /// Completes a claimed work order.
    async fn complete_work_order(&self, id: WorkOrderId, success: bool) -> Result<WorkOrder>;
}

/// [`BrokerApi`] over an in-process [`Broker`]: for hosts that run broker and agent in
/// one process, and for tests. Authorization is the same as over HTTP.
pub struct LocalBroker<S: Store + ?Sized> {
    broker: Broker<S>,
    principal: Principal,
    agent: AgentId,
}

impl<S: Store + ?Sized> LocalBroker<S> {
    /// Speaks for the agent whose key is `pak`; `Unauthorized` when the key is not an
    /// agent's.
    pub async fn connect(broker: Broker<S>, pak: &str) -> Result<Self> {
        match broker.authenticate(pak).await? {
            Principal::Agent(agent) => Ok(Self {
                broker,
                principal: Principal::Agent(agent),
                agent,
            }),
            Principal::Admin => Err(crate::Error::Unauthorized),
        }
    }
}

impl<S: Store + ?Sized> Clone for LocalBroker<S> {
    fn clone(&self) -> Self {
        Self {
            broker: self.broker.clone(),
            principal: self.principal,
            agent: self.agent,
        }
    }
}

#[async_trait]
impl<S: Store + ?Sized + 'static> BrokerApi for LocalBroker<S> {
    fn agent_id(&self) -> AgentId {
        self.agent
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        self.broker
            .heartbeat(&self.principal, self.agent, beat.clone())
            .await
    }

    async fn target_state(&self) -> Result<Vec<DeploymentObject>> {
        self.broker.target_state(&self.principal, self.agent).await
    }

    async fn report_deployment_status(
        &self,
        events: &[DeploymentStatusEvent],
    ) -> Result<StatusReportResult> {
        self.broker
            .report_deployment_status(&self.principal, self.agent, events.to_vec())
            .await
    }

    async fn report_health(&self, report: &HealthReport) -> Result<HealthReportResult> {
        self.broker
            .report_health(&self.principal, self.agent, report.clone())
            .await
    }

    async fn pending_diagnostics(&self) -> Result<Vec<PendingDiagnostic>> {
        Ok(self
            .broker
            .pending_diagnostics(&self.principal, self.agent)
            .await?
            .into_iter()
            .map(PendingDiagnostic::from)
            .collect())
    }

    async fn claim_diagnostic(&self, id: DiagnosticId, token: &str) -> Result<()> {
        self.broker
            .claim_diagnostic(&self.principal, id, Some(token))
            .await
            .map(|_| ())
    }

    async fn post_diagnostic_result(
        &self,
        id: DiagnosticId,
        outcome: &DiagnosticOutcome,
    ) -> Result<()> {
        self.broker
            .post_diagnostic_result(&self.principal, id, outcome.clone())
            .await
            .map(|_| ())
    }

    async fn open_work_orders(&self) -> Result<Vec<WorkOrder>> {
        self.broker
            .open_work_orders(&self.principal, self.agent)
            .await
    }

    async fn claim_work_order(&self, id: WorkOrderId) -> Result<WorkOrder> {
        self.broker.claim_work_order(&self.principal, id).await
    }

    async fn complete_work_order(&self, id: WorkOrderId, success: bool) -> Result<WorkOrder> {
        self.broker
            .complete_work_order(&self.principal, id, success)
            .await
    }
}

/// Shares one API between several users (the agent's loops hold it in an `Arc`).
#[async_trait]
impl<B: BrokerApi + ?Sized> BrokerApi for Arc<B> {
    fn agent_id(&self) -> AgentId {
        (**self).agent_id()
    }
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        (**self).heartbeat(beat).await
    }
    async fn target_state(&self) -> Result<Vec<DeploymentObject>> {
        (**self).target_state().await
    }
    async fn report_deployment_status(
        &self,
        events: &[DeploymentStatusEvent],
    ) -> Result<StatusReportResult> {
        (**self).report_deployment_status(events).await
    }
    async fn report_health(&self, report: &HealthReport) -> Result<HealthReportResult> {
        (**self).report_health(report).await
    }
    async fn pending_diagnostics(&self) -> Result<Vec<PendingDiagnostic>> {
        (**self).pending_diagnostics().await
    }
    async fn claim_diagnostic(&self, id: DiagnosticId, token: &str) -> Result<()> {
        (**self).claim_diagnostic(id, token).await
    }
    async fn post_diagnostic_result(
        &self,
        id: DiagnosticId,
        outcome: &DiagnosticOutcome,
    ) -> Result<()> {
        (**self).post_diagnostic_result(id, outcome).await
    }
    async fn open_work_orders(&self) -> Result<Vec<WorkOrder>> {
        (**self).open_work_orders().await
    }
    async fn claim_work_order(&self, id: WorkOrderId) -> Result<WorkOrder> {
        (**self).claim_work_order(id).await
    }
    async fn complete_work_order(&self, id: WorkOrderId, success: bool) -> Result<WorkOrder> {
        (**self).complete_work_order(id, success).await
    }
}

// ---------------------------------------------------------------- wire envelopes
//
// The request and response bodies of the agent's routes that are more than a model type:
// one definition, serialized by the server and read by the HTTP client (and the other way
// round), so the two cannot drift.

/// `GET /agents/{id}/target-state` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetStateBody {
    /// The latest object of every targeted stack.
    pub deployment_objects: Vec<DeploymentObject>,
}

/// `POST /agents/{id}/deployment-status` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusBody {
    /// Reconcile attempts, oldest first.
    pub events: Vec<DeploymentStatusEvent>,
}

/// A list of work orders (`GET /agents/{id}/work-orders/pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkOrdersBody {
    /// Pending and claimed orders, oldest first.
    pub work_orders: Vec<WorkOrder>,
}

/// `POST /work-orders/{id}/complete` body (optional; without it, a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CompleteBody {
    /// Whether the order succeeded.
    pub success: bool,
}

impl Default for CompleteBody {
    fn default() -> Self {
        Self { success: true }
    }
}

/// `GET /agents/{id}/diagnostics/pending` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingBody {
    /// Claimable requests, oldest first.
    pub requests: Vec<PendingDiagnostic>,
}

/// `POST /diagnostics/{id}/claim` body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimBody {
    /// A token the claimer chose: a retried claim with the holder's token is answered
    /// 200 again, any other claim 409.
    #[serde(default)]
    pub claim_token: Option<String>,
}

/// A health report as it arrives over the wire: each item kept as raw JSON, to be
/// decoded on its own ([`decode_each`]). The documented shape is [`HealthReport`].
#[derive(Debug, Deserialize)]
pub struct RawHealthReport {
    /// The verdicts, undecoded.
    #[serde(default)]
    pub deployment_objects: Vec<Box<serde_json::value::RawValue>>,
}

/// A deployment-status batch as it arrives over the wire, items undecoded; the
/// documented shape is [`StatusBody`].
#[derive(Debug, Deserialize)]
pub struct RawStatusBody {
    /// The reconcile attempts, undecoded.
    pub events: Vec<Box<serde_json::value::RawValue>>,
}

/// Decodes each item of a batch on its own: an item this broker cannot read (a newer
/// agent's status or outcome, a negative count, a wrong type) becomes a
/// [`Rejected`](crate::broker::Rejected) of its own instead of costing the batch. Its id
/// is the item's `id` or `deployment_object_id` when that much can be read (the nil id
/// otherwise); the reason names the item's position.
pub fn decode_each<T: serde::de::DeserializeOwned>(
    raw: &[Box<serde_json::value::RawValue>],
) -> (Vec<T>, Vec<crate::broker::Rejected>) {
    /// Just enough of an item to say which one was refused.
    #[derive(Deserialize)]
    struct ItemId {
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        deployment_object_id: Option<serde_json::Value>,
    }
    let mut items = Vec::with_capacity(raw.len());
    let mut rejected = Vec::new();
    for (index, item) in raw.iter().enumerate() {
        match serde_json::from_str::<T>(item.get()) {
            Ok(value) => items.push(value),
            Err(error) => {
                let id = serde_json::from_str::<ItemId>(item.get())
                    .ok()
                    .and_then(|i| i.id.or(i.deployment_object_id))
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_else(|| crate::ids::DeploymentObjectId(uuid::Uuid::nil()));
                rejected.push(crate::broker::Rejected {
                    id,
                    reason: format!("item {index}: {error}"),
                });
            }
        }
    }
    (items, rejected)
}
