//! [`Store`]: the one client of etcd's API, for a real etcd cluster and for the
//! [`EmbeddedStore`] alike.
//!
//! Every unary call has a deadline ([`Store::request_timeout`], on `tokio::time`, so it follows
//! simulated time). Keys are UTF-8 strings in our layout ([`crate::keys`]); values are bytes.
//!
//! **Which member we talk to.** A handle talks to one etcd member at a time, starting with the
//! first endpoint given (list the local site's member first), and moves to the next when that
//! member fails us: it is unreachable, it times out, or it has no leader. Every call carries
//! etcd's `hasleader` metadata, so a member cut off from the quorum refuses at once ("no
//! leader") instead of holding the call until its deadline, and cancels our watch and
//! keep-alive streams when it loses the leader; those then re-open on the next member. A call
//! refused before it reached etcd's log (no leader, could not connect) is retried on the next
//! member at once; any other failure is returned (a write's outcome may be unknown) and the
//! caller's retry goes to the next member. We do not spread calls over members (tonic's
//! balancer would keep choosing a member that fails fast, since it has the fewest calls in
//! flight).

mod lease;
mod txn;
mod watch;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::codegen::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tower::Layer as _;

pub use lease::{LeaseKeeper, LeaseTtl};
pub use txn::{
    Compare, LeaseCompare, OpResponse, RevisionCompare, Txn, TxnOp, TxnOutcome, ValueCompare,
};
pub use watch::{EventKind, WatchEvent, WatchStream};

use crate::embedded::EmbeddedStore;
use crate::keys::prefix_end;
use crate::pb::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, RangeResponse, StatusRequest, TxnRequest,
    TxnResponse, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use crate::pb::mvccpb::KeyValue;
use crate::{Error, limits};

/// A store revision: etcd's logical clock, one tick per write transaction.
pub type Revision = i64;

/// The ID of an etcd lease. Formats as 16 hex digits with `{:016x}` (as election keys do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::LowerHex for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One key with its value and MVCC metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the key's creation (the put that made it exist since its last delete).
    pub create_revision: Revision,
    /// Revision of the key's last change.
    pub mod_revision: Revision,
    /// Number of puts since creation (1 after creation; 0 in a delete event).
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

impl TryFrom<KeyValue> for Kv {
    type Error = Error;

    fn try_from(kv: KeyValue) -> Result<Self, Error> {
        let key = String::from_utf8(kv.key)
            .map_err(|error| Error::InvalidData(format!("non-UTF-8 key {:?}", error.as_bytes())))?;
        Ok(Kv {
            key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: (kv.lease != 0).then_some(LeaseId(kv.lease)),
        })
    }
}

/// What `Status` says about the member we talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// The store's current revision.
    pub revision: Revision,
    /// The member the answering member believes leads (0: none).
    pub leader: u64,
    /// The answering member.
    pub member_id: u64,
    /// Its etcd version string.
    pub version: String,
}

/// How [`Store::connect`] talks to a real etcd cluster. Defaults from [`crate::limits`].
///
/// **etcd must allow our PINGs.** etcd (grpc-go) closes a connection with GOAWAY
/// `too_many_pings` after three PINGs closer together than its `--grpc-keepalive-min-time`
/// (default 5 s) without data from it in between; that breaks every watch and keep-alive stream
/// on the connection. With the default 500 ms interval, run etcd with
/// `--grpc-keepalive-min-time` at or below it (our deployments and tests use `200ms`), or raise
/// `keep_alive_interval` above etcd's setting.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Deadline for one TCP + HTTP/2 connection attempt.
    pub connect_timeout: Duration,
    /// Deadline for every unary call.
    pub request_timeout: Duration,
    /// HTTP/2 PING period: a connection whose PONG does not come back within
    /// `keep_alive_timeout` is dropped and re-dialed (a partition can wedge it silently).
    pub keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// Also PING while no stream is open. Off by default: etcd counts every PING on a connection
    /// without streams as abuse (its policy has `PermitWithoutStream = false`) and closes it
    /// after three. A node always has its lease keep-alive and watch streams open anyway.
    pub keep_alive_while_idle: bool,
    /// TLS to etcd (`CENTINELA_ETCD_CA`, and the client certificate of `CENTINELA_ETCD_CERT`
    /// and `CENTINELA_ETCD_KEY` that etcd's `--client-cert-auth` maps to a user by its common
    /// name). With it every endpoint is spoken over TLS (`https://host:port` or `host:port`);
    /// without it an `https://` endpoint is refused rather than spoken in clear.
    pub tls: Option<centinela_tls::ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: limits::CONNECT_TIMEOUT,
            request_timeout: limits::REQUEST_TIMEOUT,
            keep_alive_interval: limits::KEEP_ALIVE_INTERVAL,
            keep_alive_timeout: limits::KEEP_ALIVE_TIMEOUT,
            keep_alive_while_idle: false,
            tls: None,
        }
    }
}

/// Adds etcd's `hasleader: true` metadata to every call: a member without a leader refuses
/// the call ("no leader", `UNAVAILABLE`) and cancels the stream when it loses its leader.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RequireLeader;

impl Interceptor for RequireLeader {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        Ok(request)
    }
}

type Svc = InterceptedService<Channel, RequireLeader>;

/// The clients of one member.
#[derive(Clone)]
pub(crate) struct Member {
    kv: KvClient<Svc>,
    watch: WatchClient<Svc>,
    lease: LeaseClient<Svc>,
    maintenance: MaintenanceClient<Svc>,
}

impl Member {
    fn new(channel: Channel) -> Self {
        let max = limits::MAX_DECODING_MESSAGE_BYTES;
        Member {
            kv: KvClient::with_interceptor(channel.clone(), RequireLeader)
                .max_decoding_message_size(max),
            watch: WatchClient::with_interceptor(channel.clone(), RequireLeader)
                .max_decoding_message_size(max),
            lease: LeaseClient::with_interceptor(channel.clone(), RequireLeader)
                .max_decoding_message_size(max),
            maintenance: MaintenanceClient::with_interceptor(channel, RequireLeader)
                .max_decoding_message_size(max),
        }
    }

    pub(crate) fn watch_client(&self) -> WatchClient<Svc> {
        self.watch.clone()
    }

    pub(crate) fn lease_client(&self) -> LeaseClient<Svc> {
        self.lease.clone()
    }
}

/// The members a handle may talk to, and the one it talks to now.
struct Members {
    list: Vec<Member>,
    current: AtomicUsize,
}

/// A handle to the store; cheap to clone (clones share the connections and the choice of
/// member).
#[derive(Clone)]
pub struct Store {
    members: Arc<Members>,
    request_timeout: Duration,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("members", &self.members.list.len())
            .field("current", &self.members.current.load(Ordering::Relaxed))
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether a failed call certainly did not reach the member's log, so it may be sent to
/// another member whatever it was: the member had no leader, or no connection was made.
fn refused_before_sending(error: &Error) -> bool {
    match error {
        Error::Unavailable(message) => message.contains("no leader") || message.contains("connect"),
        _ => false,
    }
}

/// Whether a failure says the member (or our way to it) is unhealthy, so the next call should
/// go to another member.
fn member_failed(error: &Error) -> bool {
    matches!(
        error,
        Error::Unavailable(_) | Error::Timeout | Error::Rpc(_)
    )
}

impl Store {
    /// A store over any tonic channel (TCP, turmoil, in-process), with the default timeout.
    pub fn from_channel(channel: Channel) -> Self {
        Store::from_channels(vec![channel])
    }

    /// A store over one channel per member, tried in order (see the module docs).
    ///
    /// # Panics
    /// If `channels` is empty.
    pub fn from_channels(channels: Vec<Channel>) -> Self {
        assert!(!channels.is_empty(), "a store needs at least one member");
        Store {
            members: Arc::new(Members {
                list: channels.into_iter().map(Member::new).collect(),
                current: AtomicUsize::new(0),
            }),
            request_timeout: limits::REQUEST_TIMEOUT,
        }
    }

    /// The member calls go to now, and its index.
    pub(crate) fn member(&self) -> (usize, &Member) {
        let index = self.members.current.load(Ordering::Acquire) % self.members.list.len();
        (index, &self.members.list[index])
    }

    /// Moves later calls off member `index` (if no other call already did).
    pub(crate) fn member_failed(&self, index: usize, error: &Error) {
        let count = self.members.list.len();
        if count > 1 && member_failed(error) {
            let next = (index + 1) % count;
            if self
                .members
                .current
                .compare_exchange(index, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                tracing::debug!(from = index, to = next, %error, "store: switching member");
            }
        }
    }

    /// The number of members this handle knows.
    pub fn member_count(&self) -> usize {
        self.members.list.len()
    }

    /// The same store with another per-call deadline.
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// The deadline of every unary call made through this handle.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Connects to a real etcd cluster through `endpoints` (`host:port`, `http://host:port`, or
    /// `https://host:port` with [`ConnectOptions::tls`]), preferring them in the order given
    /// (see the module docs), and checks that one answers (`Status`) before returning. A TLS
    /// failure (unknown CA, wrong name, our certificate refused) is [`Error::Tls`], saying which.
    pub async fn connect(endpoints: &[String], options: ConnectOptions) -> Result<Self, Error> {
        if endpoints.is_empty() {
            return Err(Error::InvalidRequest("no etcd endpoints given".to_owned()));
        }
        let mut list = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            list.push(channel(endpoint, &options)?);
        }
        let store = Store::from_channels(list).with_request_timeout(options.request_timeout);
        if options.tls.is_none() {
            store.status().await?;
            return Ok(store);
        }
        // Over TLS, ask each member ourselves: a refused handshake must reach the operator as
        // what it is ("unknown CA", "certificate refused"), not as "transport error".
        let mut failures = Vec::new();
        for (index, member) in store.members.list.iter().enumerate() {
            let mut maintenance = member.maintenance.clone();
            let call = maintenance.status(StatusRequest {});
            match tokio::time::timeout(options.request_timeout, call).await {
                Ok(Ok(_)) => {
                    store.members.current.store(index, Ordering::Release);
                    return Ok(store);
                }
                Ok(Err(status)) => failures.push(tls_failure(&endpoints[index], &status)),
                Err(_elapsed) => failures.push((None, format!("{}: timed out", endpoints[index]))),
            }
        }
        let tls_failure = failures.iter().any(|(cause, _)| cause.is_some());
        let said = failures
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join("; ");
        if tls_failure {
            Err(Error::Tls(said))
        } else {
            Err(Error::Unavailable(said))
        }
    }

    /// A store talking to `embedded` in-process (no socket), with the default timeout.
    pub fn embedded(embedded: &EmbeddedStore) -> Self {
        Store::from_channel(embedded.channel())
    }

    /// Runs one unary call under the request deadline, on the current member; a call refused
    /// before it was sent (see [`refused_before_sending`]) is retried once on each other
    /// member. A `read` is safe to send twice, so it also moves on when a member does not
    /// answer: each attempt gets an equal share of the deadline (a member that lost the
    /// etcd leader a moment ago holds calls until it notices).
    async fn unary<T, F, Fut>(&self, read: bool, call: F) -> Result<T, Error>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let count = self.members.list.len();
        let attempt_timeout = if read && count > 1 {
            self.request_timeout / u32::try_from(count).unwrap_or(u32::MAX)
        } else {
            self.request_timeout
        };
        let mut attempts = count;
        loop {
            let (index, member) = self.member();
            let result = match tokio::time::timeout(attempt_timeout, call(member.clone())).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => Error::from(status),
                Err(_elapsed) => Error::Timeout,
            };
            self.member_failed(index, &result);
            attempts -= 1;
            let retry = refused_before_sending(&result) || (read && member_failed(&result));
            if attempts == 0 || !retry {
                return Err(result);
            }
        }
    }

    pub(crate) async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        self.unary(true, |mut member| {
            let request = request.clone();
            async move { member.kv.range(request).await }
        })
        .await
    }

    pub(crate) async fn raw_txn(&self, request: TxnRequest) -> Result<TxnResponse, Error> {
        self.unary(false, |mut member| {
            let request = request.clone();
            async move { member.kv.txn(request).await }
        })
        .await
    }

    /// The key's current value, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, Error> {
        Ok(self.get_with_revision(key).await?.0)
    }

    /// The key's value as of `revision` (a historical read, as etcd keeps it until compaction),
    /// or `None` if it did not exist then. With the revision of a prefix read, the values of
    /// keys that read listed come from the same snapshot. Fails with [`Error::Compacted`] once
    /// `revision` is compacted away.
    pub async fn get_at(&self, key: &str, revision: Revision) -> Result<Option<Kv>, Error> {
        let response = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                revision,
                ..RangeRequest::default()
            })
            .await?;
        response
            .kvs
            .into_iter()
            .next()
            .map(Kv::try_from)
            .transpose()
    }

    /// The key's current value and the revision it was read at.
    pub(crate) async fn get_with_revision(
        &self,
        key: &str,
    ) -> Result<(Option<Kv>, Revision), Error> {
        let response = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..RangeRequest::default()
            })
            .await?;
        let revision = header_revision(response.header.as_ref())?;
        let kv = response
            .kvs
            .into_iter()
            .next()
            .map(Kv::try_from)
            .transpose()?;
        Ok((kv, revision))
    }

    /// Every key starting with `prefix`, in key order, read at one revision (returned), in pages
    /// of [`limits::RANGE_PAGE_KEYS`]. Watch from `revision + 1` to follow changes gap-free.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, Revision), Error> {
        self.get_prefix_paged(prefix, false).await
    }

    /// [`Store::get_prefix`] without the values (etcd's `keys_only`): listing what exists, for
    /// a fraction of the transfer.
    pub async fn get_prefix_keys(&self, prefix: &str) -> Result<(Vec<Kv>, Revision), Error> {
        self.get_prefix_paged(prefix, true).await
    }

    async fn get_prefix_paged(
        &self,
        prefix: &str,
        keys_only: bool,
    ) -> Result<(Vec<Kv>, Revision), Error> {
        let end = prefix_end(prefix.as_bytes());
        let mut kvs = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let response = self
                .range(RangeRequest {
                    key: start,
                    range_end: end.clone(),
                    limit: limits::RANGE_PAGE_KEYS,
                    revision,
                    keys_only,
                    ..RangeRequest::default()
                })
                .await?;
            if revision == 0 {
                // Later pages read at the first page's revision: one consistent snapshot.
                revision = header_revision(response.header.as_ref())?;
            }
            let Some(last) = response.kvs.last() else {
                break;
            };
            // The next page starts right after the last key: the key + "\0".
            start = last.key.clone();
            start.push(0);
            for kv in response.kvs {
                kvs.push(Kv::try_from(kv)?);
            }
            if !response.more {
                break;
            }
        }
        Ok((kvs, revision))
    }

    /// Puts `value` at `key` (attached to `lease`, or to none), returning the write's revision.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, Error> {
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.into(),
            lease: lease.map_or(0, |lease| lease.0),
            ..PutRequest::default()
        };
        let response = self
            .unary(false, |mut member| {
                let request = request.clone();
                async move { member.kv.put(request).await }
            })
            .await?;
        header_revision(response.header.as_ref())
    }

    /// Deletes `key`; `true` if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        Ok(self
            .delete_range(key.as_bytes().to_vec(), Vec::new())
            .await?
            > 0)
    }

    /// Deletes every key starting with `prefix` (in one revision); returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, Error> {
        self.delete_range(prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()))
            .await
    }

    async fn delete_range(&self, key: Vec<u8>, range_end: Vec<u8>) -> Result<u64, Error> {
        let request = DeleteRangeRequest {
            key,
            range_end,
            ..DeleteRangeRequest::default()
        };
        let response = self
            .unary(false, |mut member| {
                let request = request.clone();
                async move { member.kv.delete_range(request).await }
            })
            .await?;
        Ok(u64::try_from(response.deleted).unwrap_or(0))
    }

    /// Runs a transaction: if every compare holds, its success ops, else its failure ops; all
    /// at one revision.
    pub async fn txn(&self, txn: Txn) -> Result<TxnOutcome, Error> {
        let response = self.raw_txn(txn.into_request()).await?;
        TxnOutcome::try_from(response)
    }

    /// Forgets history before `revision` (reads and watches from earlier revisions then fail
    /// with [`Error::Compacted`]).
    pub async fn compact(&self, revision: Revision) -> Result<(), Error> {
        self.unary(false, |mut member| async move {
            member
                .kv
                .compact(CompactionRequest {
                    revision,
                    physical: false,
                })
                .await
        })
        .await?;
        Ok(())
    }

    /// Grants a lease of `ttl`, rounded up to whole seconds (etcd raises anything below its
    /// minimum, 2 s with default timing, to that minimum).
    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, Error> {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let secs = if ttl.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }
        .max(1);
        let response = self
            .unary(false, |mut member| async move {
                member
                    .lease
                    .lease_grant(LeaseGrantRequest { ttl: secs, id: 0 })
                    .await
            })
            .await?;
        if !response.error.is_empty() {
            return Err(Error::Unavailable(response.error));
        }
        Ok(LeaseId(response.id))
    }

    /// Revokes `lease`, deleting every key attached to it (in one revision).
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), Error> {
        self.unary(false, |mut member| async move {
            member
                .lease
                .lease_revoke(LeaseRevokeRequest { id: lease.0 })
                .await
        })
        .await?;
        Ok(())
    }

    /// The lease's remaining and granted TTL and its keys; `None` if it does not exist.
    pub async fn lease_ttl(&self, lease: LeaseId) -> Result<Option<LeaseTtl>, Error> {
        let response = self
            .unary(true, |mut member| async move {
                member
                    .lease
                    .lease_time_to_live(LeaseTimeToLiveRequest {
                        id: lease.0,
                        keys: true,
                    })
                    .await
            })
            .await?;
        if response.ttl < 0 {
            return Ok(None);
        }
        let keys = response
            .keys
            .into_iter()
            .map(|key| {
                String::from_utf8(key).map_err(|error| {
                    Error::InvalidData(format!("non-UTF-8 key {:?}", error.as_bytes()))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(LeaseTtl {
            remaining: secs(response.ttl),
            granted: secs(response.granted_ttl),
            keys,
        }))
    }

    /// Keeps `lease` alive from a background task until the returned keeper is dropped; see
    /// [`LeaseKeeper`]. Fails with [`Error::LeaseNotFound`] if the lease is already gone.
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<LeaseKeeper, Error> {
        LeaseKeeper::start(self.clone(), lease).await
    }

    /// Watches every key starting with `prefix`. `from_revision: None` sees changes after now;
    /// `Some(r)` replays history from revision `r` first (inclusive). See [`WatchStream`]: a
    /// broken stream yields one error and ends; resume with a new watch from
    /// [`WatchStream::last_revision`]` + 1`.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        from_revision: Option<Revision>,
    ) -> Result<WatchStream, Error> {
        WatchStream::open(
            self,
            prefix.as_bytes().to_vec(),
            prefix_end(prefix.as_bytes()),
            from_revision,
        )
        .await
    }

    /// Watches every key in `[start, end)` on **one** watch (so in revision order across the
    /// whole span, one transaction's changes together); otherwise as [`Store::watch_prefix`].
    /// Used to follow several neighbouring prefixes without watching everything under them.
    pub async fn watch_range(
        &self,
        start: &str,
        end: &[u8],
        from_revision: Option<Revision>,
    ) -> Result<WatchStream, Error> {
        WatchStream::open(self, start.as_bytes().to_vec(), end.to_vec(), from_revision).await
    }

    /// Watches one key; otherwise as [`Store::watch_prefix`].
    pub async fn watch_key(
        &self,
        key: &str,
        from_revision: Option<Revision>,
    ) -> Result<WatchStream, Error> {
        WatchStream::open(self, key.as_bytes().to_vec(), Vec::new(), from_revision).await
    }

    /// The answering member's view: current revision, leader, own ID, version.
    pub async fn status(&self) -> Result<ServerStatus, Error> {
        let response = self
            .unary(true, |mut member| async move {
                member.maintenance.status(StatusRequest {}).await
            })
            .await?;
        let header = response
            .header
            .ok_or_else(|| Error::InvalidData("status without header".to_owned()))?;
        Ok(ServerStatus {
            revision: header.revision,
            leader: response.leader,
            member_id: header.member_id,
            version: response.version,
        })
    }
}

/// What a failed first call over TLS says: the TLS problem when our side saw one, else the
/// error. With TLS 1.3 the server checks our certificate after our side of the handshake is
/// done, so a refused certificate reaches us as the connection closed at once, or as its
/// alert copied into a plain message by the HTTP/2 layer (the TLS error itself is gone by
/// then): both said as what they mean.
fn tls_failure(endpoint: &str, status: &tonic::Status) -> (Option<String>, String) {
    if let Some(cause) = centinela_tls::tls_cause(status) {
        return (Some(cause.clone()), format!("{endpoint}: {cause}"));
    }
    let text = centinela_tls::describe(status);
    let lowered = text.to_lowercase();
    if [
        "connection closed",
        "connection reset",
        "broken pipe",
        "received fatal alert",
    ]
    .iter()
    .any(|closed| lowered.contains(closed))
    {
        let cause = "etcd closed the connection right after the TLS handshake: it refused our \
                     client certificate (none given, or not signed by etcd's --trusted-ca-file \
                     CA, or expired: check CENTINELA_ETCD_CERT and CENTINELA_ETCD_KEY)"
            .to_owned();
        return (Some(cause.clone()), format!("{endpoint}: {cause} ({text})"));
    }
    (None, format!("{endpoint}: {text}"))
}

/// The lazily connected channel to one etcd endpoint, over TLS when `options.tls` is set.
fn channel(endpoint: &str, options: &ConnectOptions) -> Result<Channel, Error> {
    let secure = endpoint.starts_with("https://");
    let uri = match (&options.tls, endpoint.split_once("://")) {
        (None, _) if secure => {
            return Err(Error::InvalidRequest(format!(
                "etcd endpoint {endpoint} is https:// but no etcd CA is given \
                 (CENTINELA_ETCD_CA); refusing to speak it in clear"
            )));
        }
        (Some(_), Some(("http", _))) => {
            return Err(Error::InvalidRequest(format!(
                "etcd endpoint {endpoint} is http:// but etcd TLS is configured \
                 (CENTINELA_ETCD_CA); write it https://"
            )));
        }
        (_, Some(_)) => endpoint.to_owned(),
        (Some(_), None) => format!("https://{endpoint}"),
        (None, None) => format!("http://{endpoint}"),
    };
    let builder = Endpoint::from_shared(centinela_tls::plain_uri(&uri))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(options.keep_alive_interval)
        .keep_alive_timeout(options.keep_alive_timeout)
        .keep_alive_while_idle(options.keep_alive_while_idle);
    Ok(match &options.tls {
        None => builder.connect_lazy(),
        Some(tls) => {
            let server_name = centinela_tls::server_name_of(&uri)
                .map_err(|e| Error::InvalidRequest(format!("etcd endpoint {endpoint}: {e}")))?;
            // The connector does the TLS, so its own dial ignores `connect_timeout`: bound it.
            let connector = tower::timeout::TimeoutLayer::new(options.connect_timeout)
                .layer(tls.connector(server_name));
            builder.connect_with_connector_lazy(connector)
        }
    })
}

pub(crate) fn header_revision(
    header: Option<&crate::pb::etcdserverpb::ResponseHeader>,
) -> Result<Revision, Error> {
    header
        .map(|header| header.revision)
        .ok_or_else(|| Error::InvalidData("response without header".to_owned()))
}

fn secs(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tls_tests {
    use super::tls_failure;

    /// The refusals a TLS 1.3 server's check of our certificate reaches us as, and one that is
    /// no TLS problem.
    #[test]
    fn a_refused_certificate_is_said_whatever_shape_it_arrives_in() {
        for message in ["received fatal alert: BadCertificate", "connection closed"] {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, message);
            let mut status = tonic::Status::unknown("transport error");
            status.set_source(std::sync::Arc::new(source));
            let (cause, text) = tls_failure("https://etcd:2379", &status);
            let cause = cause.expect("a TLS cause");
            assert!(cause.contains("refused our client certificate"), "{cause}");
            assert!(text.starts_with("https://etcd:2379: "), "{text}");
        }
        let status = tonic::Status::unavailable("no leader");
        assert_eq!(tls_failure("https://etcd:2379", &status).0, None);
    }
}
