//! The one mapping from Centinela's errors to gRPC status codes.
//!
//! | error                                   | code                  | client should      |
//! |-----------------------------------------|-----------------------|--------------------|
//! | malformed field (id, position, enum)    | `INVALID_ARGUMENT`    | fix the request    |
//! | malformed message from another node     | `INVALID_ARGUMENT`    | (a version bug)    |
//! | unknown button / incident / brigade     | `NOT_FOUND`           | fix the id         |
//! | illegal transition, nothing to dispatch | `FAILED_PRECONDITION` | re-read the state  |
//! | store contention past the retry budget  | `ABORTED`             | retry              |
//! | actor restarting, no leader, store down | `UNAVAILABLE`         | retry (elsewhere)  |
//! | an actor did not answer in time         | `DEADLINE_EXCEEDED`   | retry              |
//! | corrupt record, programmer error        | `INTERNAL`            | page someone       |
//! | archive down or failing                 | `UNAVAILABLE`         | retry later        |
//! | archive record tampered or undecodable  | `DATA_LOSS`           | `audit verify`     |
//! | a history read on a node without archive | `UNAVAILABLE`        | ask another node   |

use tonic::Status;

use centinela_actors::Error as ActorError;
use centinela_proto::convert;
use centinela_records::Error as RecordsError;

pub fn from_actor(error: ActorError) -> Status {
    match error {
        ActorError::NotFound { .. } => Status::not_found(error.to_string()),
        ActorError::Unavailable(message) => Status::unavailable(message),
        ActorError::Timeout { .. } => Status::deadline_exceeded(error.to_string()),
        ActorError::Records(e) => from_records(e),
        ActorError::Malformed(message) => Status::invalid_argument(message),
        ActorError::Busy(message) => Status::failed_precondition(message),
        // Another node's answer, passed on as it came.
        ActorError::Peer { code, message, .. } => Status::new(code, message),
    }
}

pub fn from_records(error: RecordsError) -> Status {
    let message = error.to_string();
    match error {
        RecordsError::NotFound { .. } => Status::not_found(message),
        RecordsError::Refused(_) => Status::failed_precondition(message),
        RecordsError::Invalid(_) => Status::invalid_argument(message),
        RecordsError::Fenced => Status::unavailable(message),
        RecordsError::Contention { .. } => Status::aborted(message),
        RecordsError::Store {
            retryable: true, ..
        } => Status::unavailable(message),
        RecordsError::Store {
            retryable: false, ..
        }
        | RecordsError::Corrupt { .. } => {
            tracing::error!(error = %message, "internal error");
            Status::internal(message)
        }
    }
}

pub fn from_archive(error: centinela_archive::Error) -> Status {
    use centinela_archive::Error as ArchiveError;
    let message = error.to_string();
    match error {
        ArchiveError::Database(_) | ArchiveError::Migrate(_) => {
            Status::unavailable(format!("the archive did not answer: {message}"))
        }
        ArchiveError::Records(e) => from_records(e),
        ArchiveError::Tampered { .. } | ArchiveError::Decode { .. } => {
            tracing::error!(error = %message, "archive record damaged");
            Status::data_loss(message)
        }
        ArchiveError::Query(_) => Status::invalid_argument(message),
        ArchiveError::Url { .. } | ArchiveError::Refused { .. } => Status::internal(message),
    }
}

/// The node's archive, for the reads of history (closed incidents, reports, brigade posts);
/// `UNAVAILABLE` on a node that keeps none (a simulated node: a database's own threads would
/// run outside simulated time).
pub fn history(ctx: &centinela_actors::Context) -> Result<&centinela_archive::History, Status> {
    ctx.history
        .as_ref()
        .ok_or_else(|| Status::unavailable("this node keeps no archive"))
}

/// A post plan that cannot be made: the caller's numbers are `INVALID_ARGUMENT`; nothing to
/// plan for (no presses in the period, no buttons) or an inventory over the planner's limit is
/// `FAILED_PRECONDITION`.
pub fn from_posts(error: centinela_core::posts::Error) -> Status {
    use centinela_core::posts::Error as PostsError;
    let message = error.to_string();
    match error {
        PostsError::NoBrigades | PostsError::TooManyBrigades(_) => {
            Status::invalid_argument(message)
        }
        PostsError::NoDemand | PostsError::NoCandidates | PostsError::TooLarge { .. } => {
            Status::failed_precondition(message)
        }
        PostsError::BadWeight(_) => Status::internal(message),
    }
}

pub fn from_convert(error: convert::Error) -> Status {
    Status::invalid_argument(error.to_string())
}
