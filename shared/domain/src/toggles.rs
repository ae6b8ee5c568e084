//! Every voter's highest toggle number on each question: the part of an
//! event's state that grows with its votes.
//!
//! Kept in chunks by voter, and each chunk knows whether it changed since
//! it was last stored. A projector that stores its state between runs (on
//! Lambda, where memory does not last) then rewrites only the chunks its
//! new records touched, however large the event is. The number of chunks
//! doubles as the event grows, so that a chunk stays around
//! [`CHUNK_TARGET`] entries.

use std::collections::HashMap;

use crate::ids::{QuestionId, VoterId};
use crate::record::shard_of;

/// The number of entries a chunk is kept near: the chunks double once they
/// hold this many on average. A stored entry is about 50 bytes, so a chunk
/// is about 200 KB: one object read or written per touched chunk.
pub const CHUNK_TARGET: usize = 4096;

/// Chunks never exceed this many (a chunk index must fit in a `u16`).
const MAX_CHUNKS: usize = 1 << 15;

/// One stored chunk: its entries, in a fixed order.
pub type ChunkEntries = Vec<(QuestionId, VoterId, u32)>;

#[derive(Debug, Clone, Default)]
struct Chunk {
    entries: HashMap<(QuestionId, VoterId), u32>,
    /// The sum of the entries' numbers (see [`Toggles::sum`]).
    sum: u64,
    /// Changed since it was last stored (or never stored).
    dirty: bool,
}

impl Chunk {
    fn insert(&mut self, question: QuestionId, voter: VoterId, n: u32) -> u32 {
        let previous = self.entries.insert((question, voter), n).unwrap_or(0);
        self.sum = self.sum - u64::from(previous) + u64::from(n);
        self.dirty = true;
        previous
    }
}

/// See the module's documentation.
#[derive(Debug, Clone)]
pub struct Toggles {
    /// A power of two many.
    chunks: Vec<Chunk>,
    len: usize,
}

impl Default for Toggles {
    fn default() -> Self {
        Self {
            chunks: vec![Chunk::default()],
            len: 0,
        }
    }
}

impl Toggles {
    fn index(&self, voter: &VoterId) -> usize {
        chunk_of(voter, self.chunks.len())
    }

    /// The voter's highest toggle number on the question (0: none).
    pub fn get(&self, question: QuestionId, voter: &VoterId) -> u32 {
        let chunk = &self.chunks[self.index(voter)];
        chunk.entries.get(&(question, *voter)).copied().unwrap_or(0)
    }

    /// Raises the voter's number on the question to `n`, if `n` is higher;
    /// returns what it was then (`None`: `n` was not higher, nothing
    /// changed).
    pub fn raise(&mut self, question: QuestionId, voter: VoterId, n: u32) -> Option<u32> {
        if n <= self.get(question, &voter) {
            return None;
        }
        let index = self.index(&voter);
        let previous = self.chunks[index].insert(question, voter, n);
        if previous == 0 {
            self.len += 1;
            if self.len > self.chunks.len() * CHUNK_TARGET && self.chunks.len() < MAX_CHUNKS {
                self.split();
            }
        }
        Some(previous)
    }

    /// Doubles the chunks; every chunk is then changed.
    fn split(&mut self) {
        let count = self.chunks.len() * 2;
        let mut chunks = vec![Chunk::default(); count];
        for chunk in std::mem::take(&mut self.chunks) {
            for ((question, voter), n) in chunk.entries {
                chunks[chunk_of(&voter, count)].insert(question, voter, n);
            }
        }
        for chunk in &mut chunks {
            chunk.dirty = true;
        }
        self.chunks = chunks;
    }

    /// The sum of every voter's highest number on every question: the
    /// number of vote records the toggles account for (each sequence is
    /// numbered from 1 without gaps).
    pub fn sum(&self) -> u64 {
        self.chunks.iter().map(|c| c.sum).sum()
    }

    /// How many chunks there are.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunks changed since [`Toggles::mark_stored`], each with its
    /// entries in a fixed order (equal chunks store equal bytes).
    pub fn changed_chunks(&self) -> Vec<(usize, ChunkEntries)> {
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.dirty)
            .map(|(index, chunk)| {
                let mut entries: ChunkEntries = chunk
                    .entries
                    .iter()
                    .map(|(&(question, voter), &n)| (question, voter, n))
                    .collect();
                entries.sort_unstable();
                (index, entries)
            })
            .collect()
    }

    /// Whether any chunk changed since it was stored.
    pub fn changed(&self) -> bool {
        self.chunks.iter().any(|c| c.dirty)
    }

    /// The indices of the chunks changed since they were stored (cheap:
    /// no entries are copied).
    pub fn changed_indices(&self) -> Vec<usize> {
        (0..self.chunks.len())
            .filter(|&i| self.chunks[i].dirty)
            .collect()
    }

    /// Notes that every chunk is stored as it is now.
    pub fn mark_stored(&mut self) {
        for chunk in &mut self.chunks {
            chunk.dirty = false;
        }
    }

    /// Toggles as stored: `count` chunks (a power of two), of which
    /// `chunks` are given by index; the others are taken from `kept`
    /// (toggles loaded earlier with as many chunks), or are empty. A kept
    /// chunk changed since it was stored must be given: its changes are
    /// not in the stored state this is to equal.
    pub fn from_chunks(
        count: usize,
        chunks: Vec<(usize, ChunkEntries)>,
        kept: Option<Toggles>,
    ) -> Result<Self, String> {
        if !count.is_power_of_two() || count > MAX_CHUNKS {
            return Err(format!(
                "{count} toggle chunks: not a power of two up to {MAX_CHUNKS}"
            ));
        }
        let mut out = match kept {
            Some(kept) if kept.chunks.len() == count => kept,
            _ => Toggles {
                chunks: vec![Chunk::default(); count],
                len: 0,
            },
        };
        for (index, entries) in chunks {
            let mut chunk = Chunk::default();
            for (question, voter, n) in entries {
                if chunk_of(&voter, count) != index {
                    return Err(format!("voter {voter} is stored in toggle chunk {index}"));
                }
                chunk.insert(question, voter, n);
            }
            chunk.dirty = false;
            let slot = out
                .chunks
                .get_mut(index)
                .ok_or_else(|| format!("toggle chunk {index} of {count}"))?;
            *slot = chunk;
        }
        if let Some(index) = out.chunks.iter().position(|c| c.dirty) {
            return Err(format!(
                "toggle chunk {index} has changes that were not stored"
            ));
        }
        out.len = out.chunks.iter().map(|c| c.entries.len()).sum();
        Ok(out)
    }
}

/// The chunk of `count` (a power of two) that holds `voter`'s toggles.
fn chunk_of(voter: &VoterId, count: usize) -> usize {
    let count = u16::try_from(count).unwrap_or(u16::MAX);
    usize::from(shard_of(voter.as_bytes(), count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn voter(i: u32) -> VoterId {
        VoterId::parse(&format!("{:020x}", u128::from(i) * 104_729)).unwrap()
    }

    #[test]
    fn chunks_double_as_voters_come_and_every_toggle_survives() {
        let question = QuestionId::from_ulid(Ulid::from_parts(1, 1));
        let mut toggles = Toggles::default();
        let voters = 3 * CHUNK_TARGET as u32;
        for i in 0..voters {
            assert_eq!(toggles.raise(question, voter(i), 1), Some(0));
        }
        assert_eq!(toggles.chunk_count(), 4);
        assert_eq!(toggles.raise(question, voter(7), 1), None, "not higher");
        assert_eq!(toggles.raise(question, voter(7), 2), Some(1));
        assert_eq!(toggles.sum(), u64::from(voters) + 1);
        assert!((0..voters).all(|i| toggles.get(question, &voter(i)) >= 1));
        // Stored and loaded back, chunk by chunk.
        let stored = toggles.changed_chunks();
        assert_eq!(stored.len(), 4);
        toggles.mark_stored();
        assert!(!toggles.changed());
        let loaded = Toggles::from_chunks(4, stored, None).unwrap();
        assert_eq!(loaded.sum(), toggles.sum());
        assert_eq!(loaded.get(question, &voter(7)), 2);
        // One more toggle changes one chunk only.
        let mut loaded = loaded;
        loaded.raise(question, voter(1), 2);
        assert_eq!(loaded.changed_chunks().len(), 1);
    }

    #[test]
    fn a_chunk_stored_under_the_wrong_index_is_refused() {
        let question = QuestionId::from_ulid(Ulid::from_parts(1, 1));
        let misplaced = (0..64).map(voter).find(|v| chunk_of(v, 2) == 1).unwrap();
        let error = Toggles::from_chunks(2, vec![(0, vec![(question, misplaced, 1)])], None);
        assert!(error.is_err());
        assert!(Toggles::from_chunks(3, Vec::new(), None).is_err());
    }
}
