//! An in-process node for black-box tests over real sockets: [`NodeBuilder`] starts a
//! [`centinela_node::Node`] on `127.0.0.1:0` (gRPC and HTTP), by default alone on the embedded
//! store with Lima's scenario, an open gRPC edge and a console nobody signs in to; the
//! [`TestNode`] it returns holds the node and a gRPC channel connected to it.
//!
//! ```no_run
//! # async fn example() {
//! use centinela_testkit::node::NodeBuilder;
//!
//! let node = NodeBuilder::new("node-test").start().await;
//! node.wait_for_dispatcher().await;
//! let mut operator = node.operator();
//! // ... calls over gRPC ...
//! node.shutdown().await;
//! # }
//! ```

use std::net::SocketAddr;

use tonic::Code;
use tonic::transport::Channel;

use centinela_api::Security;
use centinela_core::scenario::Scenario;
use centinela_node::{ConsoleConfig, Node, Options};

pub use centinela_node::StoreConfig;
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;

use crate::wait;

/// What a test node starts with; see the module docs for the defaults.
#[derive(Clone)]
pub struct NodeBuilder {
    options: Options,
    console: ConsoleConfig,
    security: Security,
}

impl NodeBuilder {
    /// Node `id` in site `test`, ports 0, Lima's scenario, the embedded store.
    pub fn new(id: &str) -> NodeBuilder {
        NodeBuilder {
            options: Options {
                node_id: id.into(),
                site: "test".into(),
                grpc_addr: loopback_port_0(),
                http_addr: loopback_port_0(),
                advertise_grpc: None,
                scenario: Scenario::lima_centro(),
                store: StoreConfig::Embedded,
                cameras: Default::default(),
                handoff: Default::default(),
                bounds: Default::default(),
                history: Default::default(),
                tls: None,
                sip: None,
            },
            console: ConsoleConfig::default(),
            security: Security::open(),
        }
    }

    pub fn site(mut self, site: &str) -> NodeBuilder {
        self.options.site = site.into();
        self
    }

    pub fn scenario(mut self, scenario: Scenario) -> NodeBuilder {
        self.options.scenario = scenario;
        self
    }

    pub fn store(mut self, store: StoreConfig) -> NodeBuilder {
        self.options.store = store;
        self
    }

    /// The accounts ONVIF cameras are signed in to.
    pub fn cameras(mut self, credentials: centinela_node::CameraCredentials) -> NodeBuilder {
        self.options.cameras = credentials;
        self
    }

    /// The agencies incidents may be handed to, and the CAP sender.
    pub fn handoff(mut self, setup: centinela_node::HandoffSetup) -> NodeBuilder {
        self.options.handoff = setup;
        self
    }

    /// The HTTP server's address (a fixed port: a node restarting where a browser expects it).
    pub fn http_addr(mut self, addr: SocketAddr) -> NodeBuilder {
        self.options.http_addr = addr;
        self
    }

    /// Caps on connections and streams (lower than production's to reach them with a few
    /// sockets).
    pub fn bounds(mut self, bounds: centinela_node::Bounds) -> NodeBuilder {
        self.options.bounds = bounds;
        self
    }

    /// Where closed incidents are archived (`--archive URL`); SQLite in memory by default.
    pub fn archive(mut self, url: &str) -> NodeBuilder {
        self.options.history.archive = Some(url.to_string());
        self
    }

    /// TLS on both ports, and mutual TLS to the peers with a CA.
    pub fn tls(mut self, tls: centinela_node::TlsOptions) -> NodeBuilder {
        self.options.tls = Some(tls);
        self
    }

    /// The intercom gateway on a free loopback port (UDP and TCP): the node's `sip_addr`.
    pub fn sip(mut self) -> NodeBuilder {
        self.options.sip = Some(centinela_node::SipOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            optional: false,
            record: false,
        });
        self
    }

    /// The gateway ([`NodeBuilder::sip`], called first) records every call into
    /// `data_dir`'s `recordings` (`--record-calls --data-dir`).
    pub fn record_calls(mut self, data_dir: &std::path::Path) -> NodeBuilder {
        let sip = self.options.sip.as_mut().expect("record_calls after sip");
        sip.record = true;
        self.options.history.data_dir = Some(data_dir.to_path_buf());
        self
    }

    /// The intercom gateway at `addr`; `optional`: a taken address leaves the node without
    /// voice instead of failing its start (the demo's default address).
    pub fn sip_at(mut self, addr: std::net::SocketAddr, optional: bool) -> NodeBuilder {
        self.options.sip = Some(centinela_node::SipOptions {
            addr,
            optional,
            record: false,
        });
        self
    }

    /// Where closed incidents are archived and how long they stay in the store.
    pub fn history(mut self, history: centinela_archive::Settings) -> NodeBuilder {
        self.options.history = history;
        self
    }

    /// The options the node would start with.
    pub fn options(&self) -> Options {
        self.options.clone()
    }

    /// The console's operators (or demo mode); their passwords also sign operators in on gRPC.
    pub fn console(mut self, console: ConsoleConfig) -> NodeBuilder {
        self.console = console;
        self
    }

    /// What the gRPC edge checks (docs/security.md); open by default.
    pub fn security(mut self, security: Security) -> NodeBuilder {
        self.security = security;
        self
    }

    /// Starts the node (panics when it cannot); no client.
    pub async fn start_node(self) -> Node {
        Node::start_secured(self.options, self.console, self.security)
            .await
            .expect("node starts")
    }

    /// Starts the node and connects a gRPC channel to it.
    pub async fn start(self) -> TestNode {
        let node = self.start_node().await;
        let channel = Channel::from_shared(grpc_url(&node))
            .expect("a valid URL")
            .connect()
            .await
            .expect("connect to the node");
        TestNode { node, channel }
    }
}

/// An incident in one line: state, kind, priority, units, declined units.
pub fn describe_incident(i: &v1::Incident) -> String {
    format!(
        "state={:?} kind={:?} priority={:?} units={:?} declined={:?}",
        v1::IncidentState::try_from(i.state),
        v1::IncidentKind::try_from(i.kind),
        v1::Priority::try_from(i.priority),
        i.units,
        i.declined
    )
}

fn loopback_port_0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `http://` and the node's gRPC address.
pub fn grpc_url(node: &Node) -> String {
    format!("http://{}", node.grpc_addr())
}

/// A running node and a gRPC channel connected to it (no credentials: wrap it in an
/// interceptor for a secured node).
pub struct TestNode {
    pub node: Node,
    pub channel: Channel,
}

/// The node itself: `test_node.http_addr()`, `test_node.context()`.
impl std::ops::Deref for TestNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl TestNode {
    pub fn grpc_url(&self) -> String {
        grpc_url(&self.node)
    }

    /// `http://{the node's HTTP address}{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.node.http_addr())
    }

    pub fn operator(&self) -> OperatorClient<Channel> {
        OperatorClient::new(self.channel.clone())
    }

    pub fn buttons(&self) -> ButtonGatewayClient<Channel> {
        ButtonGatewayClient::new(self.channel.clone())
    }

    pub fn units(&self) -> UnitGatewayClient<Channel> {
        UnitGatewayClient::new(self.channel.clone())
    }

    /// Waits until the leader's dispatcher answers: a recommendation for an unknown incident is
    /// `UNAVAILABLE` while no dispatcher runs, `NOT_FOUND` once one does. (On an open edge.)
    pub async fn wait_for_dispatcher(&self) {
        wait::until("the dispatcher to run", || {
            let mut operator = self.operator();
            async move {
                let result = operator
                    .recommend(v1::RecommendRequest {
                        incident_id: "NO-SUCH-INCIDENT".into(),
                        limit: 1,
                    })
                    .await;
                match result {
                    Err(status) if status.code() == Code::NotFound => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
    }

    /// Presses `button` with `press_id` through `ButtonGateway.Press`; panics when refused.
    pub async fn press(&self, button: &str, press_id: &str) -> v1::PressReply {
        self.buttons()
            .press(v1::PressRequest {
                button_id: button.into(),
                press_id: press_id.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("press {button}: {e}"))
            .into_inner()
    }

    /// The incident through `Operator.GetIncident` (what `centinela incident` reads); panics
    /// when refused.
    pub async fn incident(&self, id: &str) -> v1::Incident {
        self.operator()
            .get_incident(v1::GetIncidentRequest {
                incident_id: id.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("get incident {id}: {e}"))
            .into_inner()
    }

    /// Polls the incident until `condition` holds; returns it. Fails naming `what` and the
    /// incident as last seen ([`describe_incident`]).
    pub async fn wait_incident(
        &self,
        id: &str,
        what: &str,
        condition: impl Fn(&v1::Incident) -> bool,
    ) -> v1::Incident {
        wait::until(format!("incident {id}: {what}"), || async {
            let incident = self.incident(id).await;
            if condition(&incident) {
                Ok(incident)
            } else {
                Err(describe_incident(&incident))
            }
        })
        .await
    }

    /// Drops the channel, then stops the node gracefully.
    pub async fn shutdown(self) {
        drop(self.channel);
        self.node.shutdown().await;
    }
}

/// Radio fallback for every unit that is not `available`: an operator (`op-radio`) sets each one
/// available by hand through `Operator.SetUnitStatus`. Units are `offline` until their terminal
/// or app is heard from; a test that plays no terminals uses this to have units to dispatch
/// (a radio report keeps a unit live for `RADIO_REPORT_VALID`, across owner changes).
pub async fn radio_all_available(operator: &mut OperatorClient<Channel>) {
    let units = operator
        .list_units(v1::ListUnitsRequest {})
        .await
        .unwrap_or_else(|e| panic!("list units: {e}"))
        .into_inner()
        .units;
    for unit in units {
        if unit.status != v1::UnitStatus::Offline as i32 {
            continue;
        }
        wait::until(format!("unit {} set available by radio", unit.id), || {
            let mut operator = operator.clone();
            let id = unit.id.clone();
            async move {
                operator
                    .set_unit_status(v1::SetUnitStatusRequest {
                        unit_id: id,
                        operator_id: "op-radio".into(),
                        status: v1::UnitStatus::Available as i32,
                        position: None,
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
    }
}
