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

/// The latency histogram of `admin::VersionCounters`: bucket `i` counts requests that took less
/// than 2^i microseconds (and at least 2^(i-1)); the last bucket counts the rest (over ~16 s).
/// Powers of two make the bucket one instruction on the request path.
pub mod latency {
    /// Number of buckets.
    pub const BUCKETS: usize = 26;

    /// The bucket of a request that took `us` microseconds.
    pub fn bucket(us: u64) -> usize {
        ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1)
    }

    /// The upper bound (microseconds) of bucket `i` (the last one: `u64::MAX`).
    pub fn upper_us(i: usize) -> u64 {
        if i + 1 >= BUCKETS {
            u64::MAX
        } else {
            1u64 << i
        }
    }

    /// The `q` quantile (0..1) of a histogram, as its bucket's upper bound (None when empty).
    pub fn quantile_us(buckets: &[u64], q: f64) -> Option<u64> {
        let total = buckets.iter().fold(0u64, |a, b| a.saturating_add(*b));
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen: u64 = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if seen >= rank {
                return Some(upper_us(i));
            }
        }
        Some(upper_us(buckets.len().saturating_sub(1)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn buckets_are_powers_of_two() {
            assert_eq!(bucket(0), 0);
            assert_eq!(bucket(1), 1);
            assert_eq!(bucket(3), 2);
            assert_eq!(bucket(4), 3);
            assert!(5 < upper_us(bucket(5)) && 5 >= upper_us(bucket(5)) / 2);
            assert_eq!(bucket(u64::MAX), BUCKETS - 1);
            let mut h = vec![0u64; BUCKETS];
            h[bucket(100)] = 98;
            h[bucket(50_000)] = 2;
            assert_eq!(quantile_us(&h, 0.98), Some(128));
            assert_eq!(quantile_us(&h, 0.99), Some(65_536));
            assert_eq!(quantile_us(&[0; BUCKETS], 0.99), None);
        }
    }
}
