//! A rebalance while a supervisor is still starting a large share: the entities it stops
//! before their chunk comes up must stay disowned (the node's readiness compares what it owns
//! with its share).

mod common;

use ractor::Actor;

use centinela_actors::supervisor::{Buttons, Supervisor, SupervisorMsg};
use centinela_actors::{Clock, limits};
use centinela_core::ids::ButtonId;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};

#[tokio::test]
async fn entities_stopped_before_their_start_chunk_stay_disowned() {
    let buttons = 2 * limits::START_CHUNK + 100;
    let scenario = Scenario::lima_centro().with_copies_of_first_button(buttons);
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded));
    let clock = Clock::starting_at(Timestamp::from_millis(1_795_817_112_345));
    records.seed(&scenario, clock.now()).await.expect("seed");
    let ctx = common::single_node_context(records, clock);
    let (supervisor, _) = Actor::spawn(None, Supervisor::<Buttons>::default(), ctx.clone())
        .await
        .unwrap();

    let ids: Vec<ButtonId> = scenario.buttons.iter().map(|b| b.id.clone()).collect();
    // The node takes them all on, then (a member joined) gives up the second half, before
    // the supervisor has got past the first chunk of the start: both are queued before it
    // handles either (this test's task does not yield in between).
    let kept = buttons / 2;
    assert!(
        kept > limits::START_CHUNK,
        "the stop reaches into the queued chunks"
    );
    supervisor.cast(SupervisorMsg::Start(ids.clone())).unwrap();
    supervisor
        .cast(SupervisorMsg::Stop(ids[kept..].to_vec()))
        .unwrap();
    // The first answer comes after the start's first chunk and the stop, so whatever the
    // start queued for later is in the mailbox by then; the second comes after all of it.
    for _ in 0..2 {
        ractor::call!(supervisor, SupervisorMsg::Running).expect("the supervisor answers");
    }
    assert_eq!(
        ctx.router.local_counts().0,
        kept,
        "the node owns exactly what it was last told to"
    );
    supervisor.stop(None);
}
