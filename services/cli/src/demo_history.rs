//! `centinela demo --history DAYS`: fills the demo's archive with a plausible, seeded press
//! history ([`centinela_archive::synthetic`]) before the banner, so `centinela report`,
//! `centinela plan-posts` and the console's Reportes page show something at once.
//!
//! Off by default: the demo's archive then holds only what the newcomer does in it, which is
//! what the report walkthroughs (and their tests) expect, and the start stays instant.

use centinela_core::scenario::Scenario;
use centinela_node::Node;

/// Generates `days` of history into the node's archive; the number of incidents archived.
pub async fn fill(node: &Node, scenario: &Scenario, days: u32, seed: u64) -> Result<u64, String> {
    let ctx = node.context();
    let history = ctx
        .history
        .as_ref()
        .ok_or_else(|| "this demo keeps no archive".to_string())?;
    centinela_archive::synthetic::generate(
        &history.archive,
        scenario,
        ctx.records.audit_key(),
        ctx.clock.now(),
        days,
        seed,
    )
    .await
    .map_err(|e| format!("the synthetic history was not archived: {e}"))
}
