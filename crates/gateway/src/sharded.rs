//! A map that successive snapshots share: its entries are split into shards, each behind an
//! `Arc`, so the next snapshot copies only the shards a change touches and shares every other
//! one. A change to one API of 100 000 then copies a few hundred entries, not 100 000, and the
//! replaced snapshot frees as little.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::Arc;

/// Enough that a shard stays small at the scale the gateway is measured at (100 000 APIs:
/// about 400 entries each), few enough that copying the shard list is nothing.
pub(crate) const SHARDS: usize = 256;

#[derive(Debug)]
pub(crate) struct Sharded<K, V, S = RandomState> {
    shards: Vec<Arc<HashMap<K, V, S>>>,
    hasher: S,
}

impl<K, V, S: Clone> Clone for Sharded<K, V, S> {
    fn clone(&self) -> Self {
        Self { shards: self.shards.clone(), hasher: self.hasher.clone() }
    }
}

impl<K, V, S: BuildHasher + Clone + Default> Default for Sharded<K, V, S> {
    fn default() -> Self {
        let hasher = S::default();
        Self { shards: (0..SHARDS).map(|_| Arc::new(HashMap::with_hasher(hasher.clone()))).collect(), hasher }
    }
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Clone + Default> Sharded<K, V, S> {
    /// The shard of `key`: bits of its hash that the shard's own table does not use (it takes
    /// the low bits for the bucket and the top seven for its tags), so keys spread evenly.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) >> 32) as usize % SHARDS
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].get(key)
    }

    /// The entry of `key`, in a shard of this map's own (copied first if it is shared).
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        let entries = &self.shards[shard];
        if !entries.contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).get_mut(key)
    }

    /// The value of `key`, inserted by `make` when absent.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let shard = self.shard(&key);
        Arc::make_mut(&mut self.shards[shard]).entry(key).or_insert_with(make)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        Arc::make_mut(&mut self.shards[shard]).insert(key, value)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    /// The largest shard's size.
    #[cfg(test)]
    pub(crate) fn largest_shard(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).max().unwrap_or(0)
    }

    /// The entries of the shards this map does not share with `other`: everything that may
    /// differ between the two (for maps derived one from the other).
    pub(crate) fn unshared_with<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = (&'a K, &'a V)> {
        self.shards
            .iter()
            .zip(&other.shards)
            .filter(|(mine, theirs)| !Arc::ptr_eq(mine, theirs))
            .flat_map(|(mine, _)| mine.iter())
    }
}

/// For keys that are hashes already (the router's caseless prefix hashes): only mixed, so that
/// every bit depends on every bit of the key (FNV's middle bits alone spread similar paths
/// unevenly: the largest of 256 shards held 2 600 of 100 000 `/api{i}` prefixes).
pub(crate) type Prehashed = BuildHasherDefault<Mix>;

#[derive(Default)]
pub(crate) struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys come here; anything else is folded in rather than lost.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        // MurmurHash3's 64-bit finaliser.
        let mut h = value;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        self.0 = h ^ (h >> 33);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_copies_only_its_shard_and_leaves_the_original_as_it_was() {
        let mut before: Sharded<String, usize> = Sharded::default();
        for i in 0..10_000 {
            before.insert(format!("api{i}"), i);
        }
        let mut after = before.clone();
        *after.get_mut("api7").expect("present") = 70;
        after.remove("api8");
        after.insert("new".into(), 1);
        assert_eq!((before.get("api7"), before.get("api8"), before.get("new")), (Some(&7), Some(&8), None));
        assert_eq!((after.get("api7"), after.get("api8"), after.get("new")), (Some(&70), None, Some(&1)));
        assert_eq!((before.len(), after.len()), (10_000, 10_000));
        let unshared: Vec<_> = after.unshared_with(&before).collect();
        assert!(unshared.len() < 3 * 10_000 / SHARDS * 2, "at most three shards copied, got {}", unshared.len());
        assert!(
            unshared.iter().any(|(k, _)| k.as_str() == "api7") && unshared.iter().any(|(k, _)| k.as_str() == "new")
        );
        assert_eq!(after.get_mut("absent"), None, "a miss copies nothing");
        assert_eq!(after.remove("absent"), None);
    }
}
