//! The (sender, client id) pairs the store may hold, as a Bloom filter, so that the resend
//! look-up the hub makes for every new client id needs no SQLite query when the id is new.
//!
//! That look-up ran a read transaction and an index search on the hub's task for every
//! message with an id, whose core is the one durable fan-out saturates. The filter answers
//! "absent" with certainty and "maybe" otherwise (then the query decides, as before). So it
//! must contain every pair the database holds: those found at open, and every append, added
//! before it is queued (a batch that is refused only leaves a "maybe" behind, as do messages
//! that retention deletes). When it holds more pairs than it was sized for, a twice larger
//! layer is added and new pairs go there; a look-up checks every layer.
//!
//! A store with more than [`MAX_KEYS_AT_OPEN`] pairs keeps no filter: reading them all would
//! make the start slow, and every look-up then queries as before.

use std::hash::{BuildHasher, Hash, Hasher};

use rusqlite::Connection;

/// Most pairs read at open; a larger store goes without a filter.
pub(super) const MAX_KEYS_AT_OPEN: usize = 2_000_000;
/// Bits per pair: with [`PROBES`], at most about one look-up in 400 queries needlessly.
const BITS_PER_KEY: usize = 16;
/// Bits set and tested per pair.
const PROBES: usize = 4;
/// Pairs the first layer is sized for, at least.
const MIN_KEYS: usize = 1 << 16;

/// The filter: layers of growing size, the newest last.
#[derive(Debug)]
pub(super) struct SentFilter {
    layers: Vec<Layer>,
    /// Fixed keys, so one pair always hashes the same in this process.
    hasher: std::hash::RandomState,
}

#[derive(Debug)]
struct Layer {
    bits: Vec<u64>,
    /// Bit count minus one (the count is a power of two).
    mask: u64,
    keys: usize,
    capacity: usize,
}

impl Layer {
    fn new(capacity: usize) -> Self {
        let bits = (capacity * BITS_PER_KEY).next_power_of_two();
        Layer {
            bits: vec![0; bits / 64],
            mask: bits as u64 - 1,
            keys: 0,
            capacity,
        }
    }

    /// The bit positions of a hash (double hashing).
    fn positions(&self, h: u64) -> [u64; PROBES] {
        let step = h.rotate_left(32) | 1;
        std::array::from_fn(|i| h.wrapping_add((i as u64).wrapping_mul(step)) & self.mask)
    }

    fn insert(&mut self, h: u64) {
        for p in self.positions(h) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.keys += 1;
    }

    fn may_contain(&self, h: u64) -> bool {
        self.positions(h)
            .iter()
            .all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

impl SentFilter {
    /// Reads every pair the store holds; `None` when there are more than `max_keys`
    /// ([`MAX_KEYS_AT_OPEN`]).
    pub(super) fn load(conn: &Connection, max_keys: usize) -> rusqlite::Result<Option<Self>> {
        let mut stmt = conn.prepare(
            "SELECT sender_fold, client_id FROM messages INDEXED BY messages_sent \
             WHERE client_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut keys = Vec::new();
        let hasher = std::hash::RandomState::new();
        while let Some(row) = rows.next()? {
            if keys.len() == max_keys {
                tracing::info!(
                    pairs = max_keys,
                    "many stored client ids: resends are looked up without a filter"
                );
                return Ok(None);
            }
            let fold = row.get_ref(0)?.as_str()?;
            let id = row.get_ref(1)?.as_str()?;
            keys.push(hash(&hasher, fold, id));
        }
        let mut filter = SentFilter {
            layers: vec![Layer::new(MIN_KEYS.max(keys.len() * 2))],
            hasher,
        };
        for h in keys {
            filter.insert_hash(h);
        }
        Ok(Some(filter))
    }

    /// Records that the store may now hold this pair.
    pub(super) fn insert(&mut self, sender_fold: &str, client_id: &str) {
        let h = hash(&self.hasher, sender_fold, client_id);
        self.insert_hash(h);
    }

    fn insert_hash(&mut self, h: u64) {
        let full = self.layers.last().is_none_or(|l| l.keys >= l.capacity);
        if full {
            let capacity = self.layers.last().map_or(MIN_KEYS, |l| l.capacity * 2);
            self.layers.push(Layer::new(capacity));
        }
        if let Some(layer) = self.layers.last_mut() {
            layer.insert(h);
        }
    }

    /// False when the store certainly does not hold this pair.
    pub(super) fn may_contain(&self, sender_fold: &str, client_id: &str) -> bool {
        let h = hash(&self.hasher, sender_fold, client_id);
        self.layers.iter().any(|l| l.may_contain(h))
    }
}

fn hash(hasher: &std::hash::RandomState, sender_fold: &str, client_id: &str) -> u64 {
    let mut h = hasher.build_hasher();
    // `str`'s Hash ends each string with a marker byte, so ("ab", "c") and ("a", "bc") differ.
    sender_fold.hash(&mut h);
    client_id.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> SentFilter {
        SentFilter {
            layers: Vec::new(),
            hasher: std::hash::RandomState::new(),
        }
    }

    #[test]
    fn every_inserted_pair_is_found_across_layers_and_most_others_are_not() {
        let mut f = empty();
        let n = MIN_KEYS * 3;
        for i in 0..n {
            f.insert("alice", &i.to_string());
        }
        assert!(f.layers.len() >= 2, "grew: {} layers", f.layers.len());
        assert!((0..n).all(|i| f.may_contain("alice", &i.to_string())));
        let wrong = (0..100_000)
            .filter(|i| f.may_contain("bob", &i.to_string()))
            .count();
        assert!(wrong < 1000, "{wrong} false positives in 100,000");
    }

    #[test]
    fn the_pairs_of_the_store_are_loaded_unless_there_are_too_many() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE messages (sender_fold TEXT NOT NULL, client_id TEXT);
             CREATE INDEX messages_sent ON messages (client_id, sender_fold)
                 WHERE client_id IS NOT NULL;
             INSERT INTO messages VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1'),
                 ('bob', NULL);",
        )
        .unwrap();
        let f = SentFilter::load(&conn, 3).unwrap().unwrap();
        for (fold, id) in [("alice", "a1"), ("alice", "a2"), ("bob", "b1")] {
            assert!(f.may_contain(fold, id), "{fold} {id}");
        }
        assert!(SentFilter::load(&conn, 2).unwrap().is_none(), "too many");
    }
}
