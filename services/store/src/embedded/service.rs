//! The gRPC service traits (generated from etcd's protos) implemented by [`EmbeddedStore`]: each
//! method is a thin adapter from a request to the state machine in [`super::mvcc`].

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::{EmbeddedStore, MEMBER_ID, RAFT_TERM, RequestCounts, VERSION, header, watch};
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, Member, MemberListRequest, MemberListResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, StatusRequest, StatusResponse,
    TxnRequest, TxnResponse, WatchRequest, cluster_server, kv_server, lease_server,
    maintenance_server, request_op, watch_server,
};

/// A transaction that only reads, every read serializable: what etcd lets a follower answer
/// from its own copy.
fn only_serializable_reads(request: &TxnRequest) -> bool {
    request.compare.is_empty()
        && request.failure.is_empty()
        && request.success.iter().all(|op| {
            matches!(&op.request,
                Some(request_op::Request::RequestRange(range)) if range.serializable)
        })
}

/// The response stream of `LeaseKeepAlive`.
pub(crate) type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl kv_server::Kv for EmbeddedStore {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        RequestCounts::count(&self.core.requests.ranges);
        let shared = self.core.lock();
        let mut request = request.into_inner();
        if request.serializable
            && request.revision <= 0
            && let Some(revision) = self.core.serializable_read_revision(&shared.mvcc)
        {
            request.revision = revision;
        }
        let response = shared.mvcc.range(&request)?;
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        RequestCounts::count(&self.core.requests.puts);
        let response = self.core.write(|mvcc| mvcc.put(request.get_ref()))?;
        Ok(Response::new(response))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        RequestCounts::count(&self.core.requests.deletes);
        let response = self
            .core
            .write(|mvcc| mvcc.delete_range(request.get_ref()))?;
        Ok(Response::new(response))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        RequestCounts::count(&self.core.requests.txns);
        let mut request = request.into_inner();
        let core = &self.core;
        let response = core.write(|mvcc| {
            // Only when a test made serializable reads lag: one atomic load otherwise.
            if let Some(revision) = core.serializable_read_revision(mvcc)
                && only_serializable_reads(&request)
            {
                for op in &mut request.success {
                    if let Some(request_op::Request::RequestRange(range)) = &mut op.request
                        && range.revision <= 0
                    {
                        range.revision = revision;
                    }
                }
            }
            mvcc.txn(&request)
        })?;
        Ok(Response::new(response))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let mut shared = self.core.lock();
        shared.mvcc.compact(request.get_ref())?;
        Ok(Response::new(CompactionResponse {
            header: Some(header(shared.mvcc.revision())),
        }))
    }
}

#[tonic::async_trait]
impl watch_server::Watch for EmbeddedStore {
    type WatchStream = watch::ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(watch::open(
            self.core.clone(),
            request.into_inner(),
        )))
    }
}

#[tonic::async_trait]
impl lease_server::Lease for EmbeddedStore {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let mut shared = self.core.lock();
        let (id, ttl) = shared
            .mvcc
            .lease_grant(request.id, request.ttl, Instant::now())?;
        let revision = shared.mvcc.revision();
        drop(shared);
        // The new lease may expire before whatever the expiry task sleeps until.
        self.core.lease_wake.notify_one();
        Ok(Response::new(LeaseGrantResponse {
            header: Some(header(revision)),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let id = request.get_ref().id;
        let revision = self.core.write(|mvcc| {
            let changes = mvcc.lease_revoke(id)?;
            Ok::<_, super::mvcc::ApplyError>((mvcc.revision(), changes))
        })?;
        Ok(Response::new(LeaseRevokeResponse {
            header: Some(header(revision)),
        }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let core = self.core.clone();
        // One response per request, in order; the stream ends when the client's does (or
        // fails), as etcd's does.
        let responses = request
            .into_inner()
            .take_while(|request| std::future::ready(request.is_ok()))
            .filter_map(|request| std::future::ready(request.ok()))
            .map(move |request| {
                let mut shared = core.lock();
                // etcd answers TTL 0 for a lease that does not exist (or has expired).
                let ttl = shared
                    .mvcc
                    .lease_renew(request.id, Instant::now())
                    .unwrap_or(0);
                Ok(LeaseKeepAliveResponse {
                    header: Some(header(shared.mvcc.revision())),
                    id: request.id,
                    ttl,
                })
            });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        let shared = self.core.lock();
        let info = shared
            .mvcc
            .lease_time_to_live(request.id, request.keys, Instant::now());
        // etcd answers a missing lease with TTL -1, not with an error.
        let response = match info {
            Some(info) => LeaseTimeToLiveResponse {
                header: Some(header(shared.mvcc.revision())),
                id: request.id,
                ttl: info.remaining_secs,
                granted_ttl: info.granted_secs,
                keys: info.keys,
            },
            None => LeaseTimeToLiveResponse {
                header: Some(header(shared.mvcc.revision())),
                id: request.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let shared = self.core.lock();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(header(shared.mvcc.revision())),
            leases: shared
                .mvcc
                .lease_ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for EmbeddedStore {
    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let shared = self.core.lock();
        let revision = shared.mvcc.revision();
        let db_size = shared.mvcc.approximate_bytes();
        Ok(Response::new(StatusResponse {
            header: Some(header(revision)),
            version: VERSION.to_owned(),
            db_size,
            leader: MEMBER_ID,
            raft_index: u64::try_from(revision).unwrap_or(0),
            raft_term: RAFT_TERM,
            raft_applied_index: u64::try_from(revision).unwrap_or(0),
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
            ..StatusResponse::default()
        }))
    }
}

#[tonic::async_trait]
impl cluster_server::Cluster for EmbeddedStore {
    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let revision = self.core.lock().mvcc.revision();
        Ok(Response::new(MemberListResponse {
            header: Some(header(revision)),
            members: vec![Member {
                id: MEMBER_ID,
                name: "centinela-embedded".to_owned(),
                ..Member::default()
            }],
        }))
    }
}
