//! A small typed builder for etcd transactions.
//!
//! ```
//! use centinela_store::{Compare, Txn, TxnOp};
//! // Create the key only if it does not exist yet, else read it.
//! let txn = Txn::new()
//!     .when([Compare::create_revision("/centinela/x").equal(0)])
//!     .and_then([TxnOp::put("/centinela/x", "v", None)])
//!     .or_else([TxnOp::get("/centinela/x")]);
//! # let _ = txn;
//! ```

use super::{Kv, LeaseId, Revision, header_revision};
use crate::Error;
use crate::keys::prefix_end;
use crate::pb::etcdserverpb::{
    self as pb, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op,
};

/// One condition of a transaction. Build with [`Compare::version`], [`Compare::create_revision`],
/// [`Compare::mod_revision`], [`Compare::value`] or [`Compare::lease`], then a comparison
/// (`equal`, `not_equal`, `greater`, `less`). A missing key has version, create and mod revision
/// 0 and no lease; any value comparison on it fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare(pub(crate) pb::Compare);

impl Compare {
    /// The key's version (number of puts since creation; 0 if missing).
    pub fn version(key: impl Into<String>) -> RevisionCompare {
        RevisionCompare::new(key.into(), CompareTarget::Version)
    }

    /// The key's create revision (0 if missing): `create_revision(k).equal(0)` is "k is absent".
    pub fn create_revision(key: impl Into<String>) -> RevisionCompare {
        RevisionCompare::new(key.into(), CompareTarget::Create)
    }

    /// The key's last modification revision (0 if missing).
    pub fn mod_revision(key: impl Into<String>) -> RevisionCompare {
        RevisionCompare::new(key.into(), CompareTarget::Mod)
    }

    /// The key's value (bytewise).
    pub fn value(key: impl Into<String>) -> ValueCompare {
        ValueCompare { key: key.into() }
    }

    /// The lease the key is attached to.
    pub fn lease(key: impl Into<String>) -> LeaseCompare {
        LeaseCompare { key: key.into() }
    }

    fn new(
        key: String,
        target: CompareTarget,
        result: CompareResult,
        operand: TargetUnion,
    ) -> Self {
        Compare(pb::Compare {
            result: result as i32,
            target: target as i32,
            key: key.into_bytes(),
            target_union: Some(operand),
            range_end: Vec::new(),
        })
    }
}

macro_rules! comparisons {
    ($builder:ty, $operand:ty, $union:expr) => {
        impl $builder {
            /// The field equals `operand`.
            pub fn equal(self, operand: $operand) -> Compare {
                self.compare(CompareResult::Equal, operand)
            }
            /// The field differs from `operand`.
            pub fn not_equal(self, operand: $operand) -> Compare {
                self.compare(CompareResult::NotEqual, operand)
            }
            /// The field is greater than `operand`.
            pub fn greater(self, operand: $operand) -> Compare {
                self.compare(CompareResult::Greater, operand)
            }
            /// The field is less than `operand`.
            pub fn less(self, operand: $operand) -> Compare {
                self.compare(CompareResult::Less, operand)
            }
            fn compare(self, result: CompareResult, operand: $operand) -> Compare {
                let (key, target, union) = $union(self, operand);
                Compare::new(key, target, result, union)
            }
        }
    };
}

/// A comparison on a key's version, create revision or mod revision.
#[derive(Debug, Clone)]
pub struct RevisionCompare {
    key: String,
    target: CompareTarget,
}

impl RevisionCompare {
    fn new(key: String, target: CompareTarget) -> Self {
        RevisionCompare { key, target }
    }
}

comparisons!(
    RevisionCompare,
    i64,
    |this: RevisionCompare, operand: i64| {
        let union = match this.target {
            CompareTarget::Version => TargetUnion::Version(operand),
            CompareTarget::Create => TargetUnion::CreateRevision(operand),
            _ => TargetUnion::ModRevision(operand),
        };
        (this.key, this.target, union)
    }
);

/// A comparison on a key's value.
#[derive(Debug, Clone)]
pub struct ValueCompare {
    key: String,
}

comparisons!(ValueCompare, &[u8], |this: ValueCompare, operand: &[u8]| {
    (
        this.key,
        CompareTarget::Value,
        TargetUnion::Value(operand.to_vec()),
    )
});

/// A comparison on a key's lease (`None`: no lease).
#[derive(Debug, Clone)]
pub struct LeaseCompare {
    key: String,
}

comparisons!(
    LeaseCompare,
    Option<LeaseId>,
    |this: LeaseCompare, operand: Option<LeaseId>| {
        let lease = operand.map_or(0, |lease| lease.0);
        (this.key, CompareTarget::Lease, TargetUnion::Lease(lease))
    }
);

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOp(pub(crate) RequestOp);

impl TxnOp {
    /// Puts `value` at `key`, attached to `lease` (or detached from any).
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>, lease: Option<LeaseId>) -> Self {
        TxnOp(RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into().into_bytes(),
                value: value.into(),
                lease: lease.map_or(0, |lease| lease.0),
                ..PutRequest::default()
            })),
        })
    }

    /// Reads `key` (sees earlier writes of the same transaction).
    pub fn get(key: impl Into<String>) -> Self {
        Self::range(key.into().into_bytes(), Vec::new())
    }

    /// Reads every key starting with `prefix`.
    pub fn get_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().into_bytes();
        let end = prefix_end(&prefix);
        Self::range(prefix, end)
    }

    fn range(key: Vec<u8>, range_end: Vec<u8>) -> Self {
        TxnOp(RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                range_end,
                ..RangeRequest::default()
            })),
        })
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<String>) -> Self {
        Self::delete_range(key.into().into_bytes(), Vec::new())
    }

    /// Deletes every key starting with `prefix`.
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().into_bytes();
        let end = prefix_end(&prefix);
        Self::delete_range(prefix, end)
    }

    fn delete_range(key: Vec<u8>, range_end: Vec<u8>) -> Self {
        TxnOp(RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key,
                    range_end,
                    ..DeleteRangeRequest::default()
                },
            )),
        })
    }
}

/// A transaction: `if all(compares) { success } else { failure }`, atomically, at one revision.
/// A branch may not write one key twice (etcd refuses it), and holds at most 128 ops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    compares: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl Txn {
    /// An empty transaction: no compares (so the success branch runs), no ops.
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds conditions (all must hold).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds operations run when every condition holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds operations run when some condition fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Lets the member that receives this transaction answer its reads from its own copy,
    /// without confirming with a quorum that it is current (etcd's serializable reads): one
    /// member's work instead of a round across them, but possibly stale, by however far that
    /// member lags. Only for reads whose result is checked again before it matters (the read
    /// of a compare-and-swap, whose write is guarded on the revisions read). No effect on a
    /// transaction that writes: writes always go through the leader.
    pub fn serializable(mut self) -> Self {
        for op in self.success.iter_mut().chain(self.failure.iter_mut()) {
            if let Some(request_op::Request::RequestRange(range)) = &mut op.0.request {
                range.serializable = true;
            }
        }
        self
    }

    pub(crate) fn into_request(self) -> TxnRequest {
        TxnRequest {
            compare: self.compares.into_iter().map(|c| c.0).collect(),
            success: self.success.into_iter().map(|op| op.0).collect(),
            failure: self.failure.into_iter().map(|op| op.0).collect(),
        }
    }
}

/// The result of one operation of the branch that ran, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResponse {
    /// The keys read.
    Get(Vec<Kv>),
    /// A put was applied.
    Put,
    /// A delete removed this many keys.
    Delete { deleted: u64 },
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether every compare held (so the success branch ran).
    pub succeeded: bool,
    /// The store revision after the transaction (its own revision if it wrote anything).
    pub revision: Revision,
    /// One response per op of the branch that ran.
    pub responses: Vec<OpResponse>,
}

impl TryFrom<TxnResponse> for TxnOutcome {
    type Error = Error;

    fn try_from(response: TxnResponse) -> Result<Self, Error> {
        let revision = header_revision(response.header.as_ref())?;
        let mut responses = Vec::with_capacity(response.responses.len());
        for op in response.responses {
            let op = match op.response {
                Some(response_op::Response::ResponseRange(range)) => OpResponse::Get(
                    range
                        .kvs
                        .into_iter()
                        .map(Kv::try_from)
                        .collect::<Result<_, _>>()?,
                ),
                Some(response_op::Response::ResponsePut(_)) => OpResponse::Put,
                Some(response_op::Response::ResponseDeleteRange(delete)) => OpResponse::Delete {
                    deleted: u64::try_from(delete.deleted).unwrap_or(0),
                },
                Some(response_op::Response::ResponseTxn(_)) | None => {
                    return Err(Error::InvalidData("unexpected txn response op".to_owned()));
                }
            };
            responses.push(op);
        }
        Ok(TxnOutcome {
            succeeded: response.succeeded,
            revision,
            responses,
        })
    }
}
