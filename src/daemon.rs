//! daemon
use crate::config::Config;

pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("not yet")
}
