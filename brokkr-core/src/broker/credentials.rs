//! Agents and their keys: registration, deletion, rotation and revocation.

use super::{Broker, RegisteredAgent};
use crate::auth::{Pak, Principal, Role};
use crate::ids::AgentId;
use crate::model::NewAgent;
use crate::store::Store;
use crate::{Error, Result};

impl<S: Store + ?Sized> Broker<S> {
    /// Registers an agent and issues its key (admin).
    pub async fn register_agent(&self, who: &Principal, new: NewAgent) -> Result<RegisteredAgent> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.shared.config.limits)?;
        let pak = Pak::generate(Role::Agent)?;
        let agent = new.into_agent(now);
        self.store_ref().insert_agent(&agent, &pak.hash()).await?;
        Ok(RegisteredAgent { agent, pak })
    }

    /// Deletes an agent and everything only it had (admin).
    pub async fn delete_agent(&self, who: &Principal, id: AgentId) -> Result<()> {
        who.require_admin()?;
        let deleted = self.store_ref().delete_agent(id).await;
        // Whatever the store answered: an error may come after the commit.
        self.inner.shared.keys.forget_agent(id);
        if deleted? {
            Ok(())
        } else {
            Err(Error::not_found("agent", id))
        }
    }

    /// Issues a new key for the agent; the old one stops working at once (admin or the
    /// agent itself).
    pub async fn rotate_pak(&self, who: &Principal, id: AgentId) -> Result<Pak> {
        who.require_admin_or(id)?;
        let pak = Pak::generate(Role::Agent)?;
        let replaced = self.store_ref().replace_pak(id, Some(&pak.hash())).await;
        // After the store call, whatever it answered (an error may come after the
        // commit); a lookup of the old key under way cannot put it back, the
        // generation moved on.
        self.inner.shared.keys.forget_agent(id);
        replaced?;
        Ok(pak)
    }

    /// Revokes the agent's key: it cannot authenticate until a new key is issued (admin).
    pub async fn revoke_pak(&self, who: &Principal, id: AgentId) -> Result<()> {
        who.require_admin()?;
        let revoked = self.store_ref().replace_pak(id, None).await;
        self.inner.shared.keys.forget_agent(id);
        revoked
    }
}
