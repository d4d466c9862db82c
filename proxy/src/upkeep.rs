//! The upstream upkeep loop: keeps the pools of the table in service resolved and health-checked, one
//! [`upstream::maintain`] round per pool that is due. It lives here rather than in [`upstream`] because it reads
//! the [`State`], which is built on upstream's pools: the dependency goes state → upstream only.

use std::sync::Arc;
use std::time::Duration;

use crate::state::State;
use crate::upstream;

/// How often the upkeep loop looks for pools that are due.
const UPKEEP_TICK: Duration = Duration::from_millis(200);

/// The background loop that keeps the pools of the active table resolved and health-checked.
#[derive(Debug)]
pub struct Upkeep {
    pub state: Arc<State>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for Upkeep {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let mut tick = tokio::time::interval(UPKEEP_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if let Some(active) = self.state.current() {
                for pool in active.pools.values().chain(active.tcp_pools.values()) {
                    upstream::maintain(pool, &self.state.resolver, &self.state.metrics);
                }
            }
        }
    }
}
