//! The team's records: registered agents, the rota as last imported, and the date of the last
//! digest.

use crate::ids::AgentId;
use crate::model::Agent;

use super::keys::{KEY_LAST_DIGEST, KEY_ROTA, agent_key};
use super::{Error, Store, TxResult, WriteTx, get_json, scan_json};

impl Store {
    pub fn agent(&self, id: &AgentId) -> Result<Option<Agent>, Error> {
        get_json(&self.tree, &agent_key(id))
    }

    /// Every registered agent, by id.
    pub fn agents(&self) -> Result<Vec<Agent>, Error> {
        scan_json(&self.tree, b"g/")
    }

    /// The local date (YYYY-MM-DD) of the last digest sent.
    pub fn last_digest(&self) -> Result<Option<String>, Error> {
        get_json(&self.tree, KEY_LAST_DIGEST)
    }

    /// The rota as last imported (its TOML source), if any.
    pub fn rota(&self) -> Result<Option<String>, Error> {
        get_json(&self.tree, KEY_ROTA)
    }
}

impl WriteTx<'_> {
    pub fn agent(&self, id: &AgentId) -> TxResult<Option<Agent>> {
        self.get(&agent_key(id))
    }

    pub fn put_agent(&self, agent: &Agent) -> TxResult<()> {
        self.put(&agent_key(&agent.id), agent)
    }

    pub fn remove_agent(&self, id: &AgentId) -> TxResult<()> {
        self.tree.remove(agent_key(id).as_bytes())?;
        Ok(())
    }

    pub fn set_last_digest(&self, date: &str) -> TxResult<()> {
        self.put(KEY_LAST_DIGEST, &date)
    }

    pub fn set_rota(&self, source: &str) -> TxResult<()> {
        self.put(KEY_ROTA, &source)
    }
}
