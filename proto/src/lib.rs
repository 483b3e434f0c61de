//! Switchyard's wire contract, generated from the `.proto` files beside this crate.
//!
//! - [`admin`]: the admin API every control node serves on `--api-addr` (CLI and any gRPC client).
//! - [`raft`]: the peer protocol between control nodes on `--peer-addr`.
//! - [`stream`]: the config stream every control node serves to proxies on `--api-addr`.
//!
//! [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection, so `grpcurl` works without the files.
#![allow(clippy::all)]

/// Modules nested by protobuf package, as the generated code expects.
pub mod switchyard {
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("switchyard.admin.v1");
        }
    }
    pub mod raft {
        pub mod v1 {
            tonic::include_proto!("switchyard.raft.v1");
        }
    }
    pub mod stream {
        pub mod v1 {
            tonic::include_proto!("switchyard.stream.v1");
        }
    }
}

pub use switchyard::admin::v1 as admin;
pub use switchyard::raft::v1 as raft;
pub use switchyard::stream::v1 as stream;

/// Encoded descriptors of every service, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("switchyard_descriptor");

/// Largest gRPC message a Switchyard endpoint accepts (config documents and snapshot chunks).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
