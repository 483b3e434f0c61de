//! [`ShardedMap`]: a string-keyed map split into `Arc`'d shards in `Arc`'d groups, so that a
//! new version that changes a few keys copies only the shards holding them (and their groups'
//! pointer lists) and shares every other shard with the previous version.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::sync::Arc;

/// Keys per shard the map aims at: a change copies about this many entries.
const TARGET_PER_SHARD: usize = 32;
/// Fewest shards (small maps stay cheap to copy; the array itself is the copy).
const MIN_SHARDS: usize = 16;

/// The shard hash: SipHash with fixed keys, so the same key lands in the same shard in every
/// version and every process (maps are rebuilt from their previous version, never rehashed).
type ShardHasher = BuildHasherDefault<DefaultHasher>;

/// A persistent `str → V` map: cloning it copies the pointers to its groups of shards,
/// [`ShardedMap::set`] copies the group and the shard it changes (copy-on-write through
/// [`Arc::make_mut`]). Shards hold about 32 keys and groups about √(shards) shards, so a change
/// copies a few dozen pointers and entries whatever the size of the map.
///
/// Keys are `Box<str>` by default; `K = Arc<str>` lets a map share its keys with the values
/// (e.g. routes by their `Arc<str>` name: no second copy of each name).
#[derive(Debug, Clone)]
pub struct ShardedMap<V, K = Box<str>> {
    groups: Box<[Group<K, V>]>,
    /// Shards per group (a power of two).
    per_group: usize,
    len: usize,
}

type Group<K, V> = Arc<Vec<Arc<HashMap<K, V>>>>;

/// A key of a [`ShardedMap`]: an owned string (`Box<str>` or `Arc<str>`).
pub trait MapKey: Borrow<str> + Eq + Hash + Clone + for<'a> From<&'a str> {}
impl<T: Borrow<str> + Eq + Hash + Clone + for<'a> From<&'a str>> MapKey for T {}

impl<V, K: MapKey> Default for ShardedMap<V, K> {
    fn default() -> Self {
        ShardedMap::with_capacity(0)
    }
}

impl<V, K: MapKey> ShardedMap<V, K> {
    /// An empty map sized for about `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        let shards = (n / TARGET_PER_SHARD).max(MIN_SHARDS).next_power_of_two();
        // Groups of 2^ceil(log2(shards)/2) shards.
        let bits = shards.trailing_zeros();
        let per_group = 1usize << bits.div_ceil(2);
        let groups = shards / per_group;
        ShardedMap {
            groups: (0..groups)
                .map(|_| Arc::new((0..per_group).map(|_| Arc::new(HashMap::new())).collect()))
                .collect(),
            per_group,
            len: 0,
        }
    }

    fn shards(&self) -> usize {
        self.groups.len() * self.per_group
    }

    /// (group, shard in the group) of `key`.
    fn shard_of(&self, key: &str) -> (usize, usize) {
        let h = ShardHasher::default().hash_one(key);
        // Both counts are powers of two.
        let s = (h as usize) & (self.shards() - 1);
        (s / self.per_group, s % self.per_group)
    }

    fn shard(&self, key: &str) -> &Arc<HashMap<K, V>> {
        let (g, i) = self.shard_of(key);
        &self.groups[g][i]
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        self.shard(key).get(key)
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
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .flat_map(|s| s.iter().map(|(k, v)| (k.borrow(), v)))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .flat_map(|s| s.values())
    }

    /// Whether the shards are too full for their number (then the caller rebuilds the map
    /// with [`ShardedMap::with_capacity`] to keep the cost of a change bounded).
    pub fn overfull(&self) -> bool {
        self.len > self.shards() * TARGET_PER_SHARD * 4
    }

    /// Whether `self` and `other` share the shard holding `key` (test helper: a version shares
    /// every shard it did not change).
    #[cfg(test)]
    pub(crate) fn shares_shard_of(&self, other: &Self, key: &str) -> bool {
        self.shards() == other.shards() && Arc::ptr_eq(self.shard(key), other.shard(key))
    }
}

impl<V: Clone, K: MapKey> ShardedMap<V, K> {
    /// The shard of `key`, copied (with its group) if another version shares it.
    fn shard_mut(&mut self, key: &str) -> &mut HashMap<K, V> {
        let (g, i) = self.shard_of(key);
        Arc::make_mut(&mut Arc::make_mut(&mut self.groups[g])[i])
    }

    /// Set (`Some`) or remove (`None`) the value of `key`, copying its shard if another version
    /// shares it.
    pub fn set(&mut self, key: &str, value: Option<V>) {
        match value {
            Some(v) => self.insert(K::from(key), v),
            None => {
                if self.shard(key).contains_key(key) && self.shard_mut(key).remove(key).is_some() {
                    self.len -= 1;
                }
            }
        }
    }

    /// Set the value of `key` (an owned key: e.g. an `Arc<str>` shared with the value),
    /// copying its shard if another version shares it.
    pub fn insert(&mut self, key: K, value: V) {
        if self.shard_mut(key.borrow()).insert(key, value).is_none() {
            self.len += 1;
        }
    }

    /// Replace the value of `key` by `f(current)` (`None` in or out: absent).
    pub fn update(&mut self, key: &str, f: impl FnOnce(Option<&V>) -> Option<V>) {
        let new = f(self.get(key));
        self.set(key, new);
    }
}

impl<V: Clone, K: MapKey> FromIterator<(K, V)> for ShardedMap<V, K> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let items: Vec<(K, V)> = iter.into_iter().collect();
        let mut m = ShardedMap::with_capacity(items.len());
        let mut shards: Vec<HashMap<K, V>> = (0..m.shards()).map(|_| HashMap::new()).collect();
        for (k, v) in items {
            let (g, i) = m.shard_of(k.borrow());
            if shards[g * m.per_group + i].insert(k, v).is_none() {
                m.len += 1;
            }
        }
        // No spare capacity: the map is immutable until a change copies a shard.
        let mut shards = shards.into_iter().map(|mut s| {
            s.shrink_to_fit();
            Arc::new(s)
        });
        m.groups = (0..m.groups.len())
            .map(|_| Arc::new(shards.by_ref().take(m.per_group).collect()))
            .collect();
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
