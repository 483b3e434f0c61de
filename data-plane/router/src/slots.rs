//! [`SlotMap`]: a persistent map from a route's [`slot`](crate::Route::slot) to a value (the
//! proxy's compiled route), so that a request finds a route's value by index instead of
//! hashing its name. Values sit in `Arc`'d chunks of 32 in `Arc`'d groups of 64 chunks, so a
//! new version that sets a few slots copies only their chunks (and their groups' pointer
//! lists) and shares every other chunk with the previous version.

use std::sync::Arc;

/// Values per chunk (a power of two).
const CHUNK: usize = 32;
/// Chunks per group (a power of two).
const GROUP: usize = 64;

type Chunk<V> = Arc<[Option<V>; CHUNK]>;

/// A persistent `slot → V` map (see the module documentation). Cloning it copies one pointer
/// per 2,048 slots; [`SlotMap::set`] copies the chunk and the group it changes (copy-on-write
/// through [`Arc::make_mut`]); [`SlotMap::get`] is three indexed loads.
#[derive(Debug, Clone)]
pub struct SlotMap<V> {
    groups: Vec<Arc<Vec<Chunk<V>>>>,
    len: usize,
}

impl<V> Default for SlotMap<V> {
    fn default() -> Self {
        SlotMap {
            groups: Vec::new(),
            len: 0,
        }
    }
}

impl<V> SlotMap<V> {
    /// The value of `slot`.
    #[inline]
    pub fn get(&self, slot: usize) -> Option<&V> {
        let chunk = self
            .groups
            .get(slot / (CHUNK * GROUP))?
            .get(slot / CHUNK % GROUP)?;
        chunk[slot % CHUNK].as_ref()
    }

    /// Number of slots holding a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot holds a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .flat_map(|c| c.iter())
            .flatten()
    }

    /// Whether `self` and `other` share the chunk holding `slot` (test helper: a version shares
    /// every chunk it did not change).
    #[cfg(test)]
    pub(crate) fn shares_chunk_of(&self, other: &Self, slot: usize) -> bool {
        let chunk = |m: &Self| -> Option<*const [Option<V>; CHUNK]> {
            Some(Arc::as_ptr(
                m.groups
                    .get(slot / (CHUNK * GROUP))?
                    .get(slot / CHUNK % GROUP)?,
            ))
        };
        matches!((chunk(self), chunk(other)), (Some(a), Some(b)) if std::ptr::eq(a, b))
    }
}

impl<V: Clone> SlotMap<V> {
    /// Set (`Some`) or clear (`None`) the value of `slot`, copying its chunk (and group) if
    /// another version shares it.
    pub fn set(&mut self, slot: usize, value: Option<V>) {
        let (g, c, i) = (slot / (CHUNK * GROUP), slot / CHUNK % GROUP, slot % CHUNK);
        if value.is_none() && self.get(slot).is_none() {
            return;
        }
        if self.groups.len() <= g {
            self.groups.resize_with(g + 1, || Arc::new(Vec::new()));
        }
        let group = Arc::make_mut(&mut self.groups[g]);
        if group.len() <= c {
            group.resize_with(c + 1, || Arc::new(std::array::from_fn(|_| None)));
        }
        let cell = &mut Arc::make_mut(&mut group[c])[i];
        match (cell.is_some(), value.is_some()) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
        *cell = value;
    }
}

impl<V: Clone> FromIterator<(usize, V)> for SlotMap<V> {
    fn from_iter<I: IntoIterator<Item = (usize, V)>>(iter: I) -> Self {
        let mut m = SlotMap::default();
        for (slot, v) in iter {
            m.set(slot, Some(v));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_and_share() {
        let a: SlotMap<u32> = (0..10_000u32).map(|i| (i as usize * 3, i)).collect();
        assert_eq!(a.len(), 10_000);
        assert_eq!(a.get(3 * 77), Some(&77));
        assert_eq!(a.get(3 * 77 + 1), None);
        assert_eq!(a.get(1 << 40), None);
        let mut b = a.clone();
        b.set(30, Some(7));
        b.set(31, Some(8));
        b.set(60, None);
        b.set(61, None);
        b.set(100_000, Some(1));
        assert_eq!(b.len(), 10_001);
        assert_eq!((a.get(30), b.get(30)), (Some(&10), Some(&7)));
        assert_eq!((a.get(31), b.get(31)), (None, Some(&8)));
        assert_eq!((a.get(60), b.get(60)), (Some(&20), None));
        assert_eq!(b.get(100_000), Some(&1));
        // Only the chunks holding a changed slot were copied.
        for s in (0..30_000).step_by(CHUNK) {
            let touched = [30, 31, 60, 61].iter().any(|c| c / CHUNK == s / CHUNK);
            assert_eq!(a.shares_chunk_of(&b, s), !touched, "{s}");
        }
        let mut vals: Vec<u32> = b.values().copied().collect();
        vals.sort_unstable();
        assert_eq!(vals.len(), 10_001);
    }
}
