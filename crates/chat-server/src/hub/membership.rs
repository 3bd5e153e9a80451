//! The rooms one connection is in, each with the last `seq` queued to it.
//!
//! Why a small sorted `Vec` and not a set and a map: a connection is in a handful of rooms, and
//! this is kept for every connection. A `BTreeSet` of one name allocates a whole node (~280
//! bytes) and a `HashMap` of one entry a table (~150 bytes); one `Vec` of (name, seq) pairs is
//! ~100 bytes, looks a room up without hashing its name, and iterates in name order as the set
//! did.

/// Folded room names in order, each with the last `seq` queued to the connection.
#[derive(Debug, Default)]
pub(super) struct Membership {
    rooms: Vec<(String, u64)>,
}

impl Membership {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.rooms.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Whether the connection is in room `key`.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// How many rooms it is in.
    pub(super) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Enters room `key` (or, already in it, records `seq` as the last queued).
    pub(super) fn insert(&mut self, key: &str, seq: u64) {
        match self.find(key) {
            Ok(i) => self.rooms[i].1 = seq,
            Err(i) => self.rooms.insert(i, (key.to_owned(), seq)),
        }
    }

    /// Leaves room `key`.
    pub(super) fn remove(&mut self, key: &str) {
        if let Ok(i) = self.find(key) {
            self.rooms.remove(i);
        }
    }

    /// The last `seq` queued in room `key`, to update; `None` if not in it.
    pub(super) fn last_seq_mut(&mut self, key: &str) -> Option<&mut u64> {
        let i = self.find(key).ok()?;
        Some(&mut self.rooms[i].1)
    }

    /// The rooms in name order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.rooms.iter().map(|(k, _)| k)
    }

    /// The rooms in name order with the last `seq` queued in each.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, u64)> {
        self.rooms.iter().map(|(k, s)| (k, *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_stay_in_name_order_with_their_last_seq() {
        let mut m = Membership::default();
        m.insert("#b", 1);
        m.insert("#a", 5);
        m.insert("#c", 2);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["#a", "#b", "#c"]);
        m.insert("#b", 9);
        *m.last_seq_mut("#c").unwrap() = 3;
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [
                (&"#a".to_owned(), 5),
                (&"#b".to_owned(), 9),
                (&"#c".to_owned(), 3)
            ]
        );
        m.remove("#a");
        m.remove("#nope");
        assert!(!m.contains("#a") && m.contains("#b"));
        assert_eq!(m.len(), 2);
        assert!(m.last_seq_mut("#a").is_none());
    }
}
