//! Generated etcd API types, clients and server traits (from `/proto/etcd`, see its README).
//!
//! The package and module names are etcd's own (`etcdserverpb`, `mvccpb`), so the generated
//! code refers to `super::mvccpb::KeyValue` exactly as etcd's protos say.

#[allow(clippy::all, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

#[allow(clippy::all, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
