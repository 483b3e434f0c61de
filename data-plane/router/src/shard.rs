//! [`ShardedMap`]: a string-keyed map split into `Arc`'d shards, so that a new version that
//! changes a few keys copies only the shards holding them (plus the array of shard pointers)
//! and shares every other shard with the previous version.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

/// Keys per shard the map aims at: a change copies about this many entries.
const TARGET_PER_SHARD: usize = 32;
/// Fewest shards (small maps stay cheap to copy; the array itself is the copy).
const MIN_SHARDS: usize = 16;

/// The shard hash: SipHash with fixed keys, so the same key lands in the same shard in every
/// version and every process (maps are rebuilt from their previous version, never rehashed).
type ShardHasher = BuildHasherDefault<DefaultHasher>;

/// A persistent `str → V` map: cloning it copies the shard pointers, [`ShardedMap::update`]
/// copies the shards it changes (copy-on-write through [`Arc::make_mut`]).
#[derive(Debug, Clone)]
pub struct ShardedMap<V> {
    shards: Box<[Arc<HashMap<Box<str>, V>>]>,
    len: usize,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap::with_capacity(0)
    }
}

impl<V> ShardedMap<V> {
    /// An empty map sized for about `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        let shards = (n / TARGET_PER_SHARD).max(MIN_SHARDS).next_power_of_two();
        ShardedMap {
            shards: (0..shards).map(|_| Arc::new(HashMap::new())).collect(),
            len: 0,
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        let h = ShardHasher::default().hash_one(key);
        // The shard count is a power of two.
        (h as usize) & (self.shards.len() - 1)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        self.shards[self.shard_of(key)].get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every `(key, value)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (&**k, v)))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.shards.iter().flat_map(|s| s.values())
    }

    /// Whether the shards are too full for their number (then the caller rebuilds the map
    /// with [`ShardedMap::with_capacity`] to keep the cost of a change bounded).
    pub fn overfull(&self) -> bool {
        self.len > self.shards.len() * TARGET_PER_SHARD * 4
    }

    /// Whether `self` and `other` share the shard holding `key` (test helper: a version shares
    /// every shard it did not change).
    #[cfg(test)]
    pub(crate) fn shares_shard_of(&self, other: &Self, key: &str) -> bool {
        self.shards.len() == other.shards.len()
            && Arc::ptr_eq(
                &self.shards[self.shard_of(key)],
                &other.shards[other.shard_of(key)],
            )
    }
}

impl<V: Clone> ShardedMap<V> {
    /// Set (`Some`) or remove (`None`) the value of `key`, copying its shard if another version
    /// shares it.
    pub fn set(&mut self, key: &str, value: Option<V>) {
        let i = self.shard_of(key);
        match value {
            Some(v) => {
                if Arc::make_mut(&mut self.shards[i])
                    .insert(Box::from(key), v)
                    .is_none()
                {
                    self.len += 1;
                }
            }
            None => {
                if self.shards[i].contains_key(key)
                    && Arc::make_mut(&mut self.shards[i]).remove(key).is_some()
                {
                    self.len -= 1;
                }
            }
        }
    }

    /// Replace the value of `key` by `f(current)` (`None` in or out: absent).
    pub fn update(&mut self, key: &str, f: impl FnOnce(Option<&V>) -> Option<V>) {
        let new = f(self.get(key));
        self.set(key, new);
    }
}

impl<V: Clone> FromIterator<(Box<str>, V)> for ShardedMap<V> {
    fn from_iter<I: IntoIterator<Item = (Box<str>, V)>>(iter: I) -> Self {
        let items: Vec<(Box<str>, V)> = iter.into_iter().collect();
        let mut m = ShardedMap::with_capacity(items.len());
        let mut shards: Vec<HashMap<Box<str>, V>> =
            (0..m.shards.len()).map(|_| HashMap::new()).collect();
        for (k, v) in items {
            let i = m.shard_of(&k);
            if shards[i].insert(k, v).is_none() {
                m.len += 1;
            }
        }
        m.shards = shards.into_iter().map(Arc::new).collect();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_copies_one_shard() {
        let a: ShardedMap<u32> = (0..10_000u32)
            .map(|i| (Box::from(format!("k{i}")), i))
            .collect();
        assert_eq!(a.len(), 10_000);
        let mut b = a.clone();
        b.set("k1", Some(7));
        b.set("new", Some(1));
        b.set("k2", None);
        b.set("absent", None);
        assert_eq!(b.len(), 10_000);
        assert_eq!(b.get("k1"), Some(&7));
        assert_eq!(a.get("k1"), Some(&1));
        assert_eq!(b.get("k2"), None);
        assert_eq!(a.get("k2"), Some(&2));
        // Every shard not holding a changed key is shared.
        let changed = ["k1", "new", "k2"];
        for i in 0..10_000 {
            let k = format!("k{i}");
            let touched = changed.iter().any(|c| a.shard_of(c) == a.shard_of(&k));
            assert_eq!(a.shares_shard_of(&b, &k), !touched, "{k}");
        }
    }
}
