//! Which rules of a chain can match a packet, found without visiting the
//! others: per-field interval tables of rule bit sets (the bit-vector
//! scheme of packet classification).
//!
//! For each header field a chain's rules test (IPv4 and IPv6 source and
//! destination, protocol, source and destination port, conntrack state),
//! the field's value space is cut into elementary intervals at every
//! boundary of every rule's set; each interval holds the bit set of the
//! rules whose set contains it (one bit per rule, in chain order). A
//! packet's candidates are the AND of the rows its values fall in, read
//! word by word and lazily, so a first-match walk that stops early reads
//! only the words before the deciding rule.
//!
//! Each table is exact per field: a rule is a candidate exactly when each
//! indexed field's set contains the packet's value. Every rule
//! [`Match::matches_header`] accepts is therefore a candidate, and the walk
//! still asks each candidate everything else (interfaces, marks, rarer
//! fields, opaque parts), so the candidates only spare it rules that cannot
//! match. A field whose table would be larger than [`FIELD_BYTES`] is left
//! out (its rows count as "every rule"), which keeps the candidates a
//! superset and the memory bounded.

use ringfence_model::interval::Bound;
use ringfence_model::{IntervalSet, Match, Packet};
use std::net::IpAddr;

/// Largest table kept for one field of one chain: elementary intervals ×
/// rules / 8 bytes. A chain of 10,000 rules with 10,000 distinct
/// destinations needs about 12 MB for that field.
pub const FIELD_BYTES: usize = 32 << 20;

/// One field's table: elementary intervals by their lowest value, and a
/// row of `words` 64-bit words per interval.
#[derive(Debug)]
struct Field<K> {
    starts: Vec<K>,
    rows: Vec<u64>,
}

impl<K: Bound> Field<K> {
    /// The table of `sets` (rule `i`'s set is `sets[i]`), or `None` when
    /// every rule holds every value (the field decides nothing) or the
    /// table would exceed [`FIELD_BYTES`].
    fn build<'r>(
        words: usize,
        sets: impl Iterator<Item = &'r IntervalSet<K>> + Clone,
    ) -> Option<Self>
    where
        K: 'r,
    {
        if sets.clone().all(IntervalSet::is_full) {
            return None;
        }
        let mut starts = vec![K::MIN];
        for s in sets.clone() {
            for &(lo, hi) in s.ranges() {
                starts.push(lo);
                if let Some(next) = hi.succ() {
                    starts.push(next);
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        if starts.len().saturating_mul(words).saturating_mul(8) > FIELD_BYTES {
            return None;
        }
        // A sweep over the intervals: each range sets its rule's bit where
        // it starts and clears it where it ends (ends first at one point,
        // though canonical sets never touch).
        let at = |v: K| starts.partition_point(|&s| s < v);
        let mut events: Vec<(u32, bool, u32)> = Vec::new();
        for (i, s) in sets.enumerate() {
            for &(lo, hi) in s.ranges() {
                events.push((at(lo) as u32, true, i as u32));
                if let Some(next) = hi.succ() {
                    events.push((at(next) as u32, false, i as u32));
                }
            }
        }
        events.sort_unstable();
        let mut rows = vec![0u64; starts.len() * words];
        let mut cur = vec![0u64; words];
        let mut e = events.iter().peekable();
        for (j, row) in rows.chunks_exact_mut(words).enumerate() {
            while let Some(&&(k, set, rule)) = e.peek() {
                if k as usize != j {
                    break;
                }
                let (w, b) = (rule as usize / 64, rule % 64);
                if set {
                    cur[w] |= 1 << b;
                } else {
                    cur[w] &= !(1 << b);
                }
                e.next();
            }
            row.copy_from_slice(&cur);
        }
        Some(Self { starts, rows })
    }

    /// The row of the interval holding `v`.
    #[inline]
    fn row(&self, v: K, words: usize) -> &[u64] {
        // `starts[0]` is the type's minimum, so some interval holds `v`.
        let j = self.starts.partition_point(|&s| s <= v) - 1;
        &self.rows[j * words..(j + 1) * words]
    }
}

/// The rule tables of one chain.
#[derive(Debug)]
pub struct ChainIndex {
    /// Words per row: one bit per rule.
    words: usize,
    /// Every rule (the row used when no table applies).
    all: Vec<u64>,
    src4: Option<Field<u32>>,
    dst4: Option<Field<u32>>,
    src6: Option<Field<u128>>,
    dst6: Option<Field<u128>>,
    proto: Option<Field<u8>>,
    sport: Option<Field<u16>>,
    dport: Option<Field<u16>>,
    /// Per conntrack state bit (0-4): the rules whose state set has it;
    /// `None` when every rule takes every state.
    ct: Option<Vec<u64>>,
}

/// Conntrack state bits a packet can carry ([`ringfence_model::CtStates::ALL`]).
const CT_BITS: usize = 5;

impl ChainIndex {
    /// Tables for the rules whose matches `rules` yields, in chain order.
    pub fn build<'r>(rules: impl Iterator<Item = &'r Match> + Clone) -> Self {
        let n = rules.clone().count();
        let words = n.div_ceil(64).max(1);
        let mut all = vec![0u64; words];
        for i in 0..n {
            all[i / 64] |= 1 << (i % 64);
        }
        let ct = rules.clone().any(|m| m.ct_state.0 & 31 != 31).then(|| {
            let mut rows = vec![0u64; CT_BITS * words];
            for (i, m) in rules.clone().enumerate() {
                for s in 0..CT_BITS {
                    if m.ct_state.0 & (1 << s) != 0 {
                        rows[s * words + i / 64] |= 1 << (i % 64);
                    }
                }
            }
            rows
        });
        Self {
            words,
            src4: Field::build(words, rules.clone().map(|m| &m.src.v4)),
            dst4: Field::build(words, rules.clone().map(|m| &m.dst.v4)),
            src6: Field::build(words, rules.clone().map(|m| &m.src.v6)),
            dst6: Field::build(words, rules.clone().map(|m| &m.dst.v6)),
            proto: Field::build(words, rules.clone().map(|m| &m.protocol)),
            sport: Field::build(words, rules.clone().map(|m| &m.sport)),
            dport: Field::build(words, rules.clone().map(|m| &m.dport)),
            all,
            ct,
        }
    }

    /// The rules from `from` on that can match `p`, ascending.
    #[inline]
    pub fn candidates(&self, p: &Packet, from: usize) -> Cands<'_> {
        let w = self.words;
        let mut rows: [&[u64]; 7] = [&self.all; 7];
        let mut k = 0;
        fn add<'x>(rows: &mut [&'x [u64]; 7], k: &mut usize, r: &'x [u64]) {
            rows[*k] = r;
            *k += 1;
        }
        match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if let Some(f) = &self.src4 {
                    add(&mut rows, &mut k, f.row(u32::from(s), w));
                }
                if let Some(f) = &self.dst4 {
                    add(&mut rows, &mut k, f.row(u32::from(d), w));
                }
            }
            (s, d) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V6(a) => Some(u128::from(a)),
                    IpAddr::V4(_) => None,
                };
                // Mixed families never match an address set of one family;
                // the walk decides those packets itself.
                if let (Some(s), Some(d)) = (v6(s), v6(d)) {
                    if let Some(f) = &self.src6 {
                        add(&mut rows, &mut k, f.row(s, w));
                    }
                    if let Some(f) = &self.dst6 {
                        add(&mut rows, &mut k, f.row(d, w));
                    }
                }
            }
        }
        if let Some(f) = &self.proto {
            add(&mut rows, &mut k, f.row(p.protocol, w));
        }
        if let Some(f) = &self.sport {
            add(&mut rows, &mut k, f.row(p.sport, w));
        }
        if let Some(f) = &self.dport {
            add(&mut rows, &mut k, f.row(p.dport, w));
        }
        if let Some(ct) = &self.ct {
            // One state bit (as packets carry): its row; anything else is
            // left to the walk.
            if p.ct_state.count_ones() == 1 && (p.ct_state.trailing_zeros() as usize) < CT_BITS {
                let s = p.ct_state.trailing_zeros() as usize;
                add(&mut rows, &mut k, &ct[s * w..(s + 1) * w]);
            }
        }
        let k = k.max(1);
        let mut c = Cands {
            rows,
            k,
            word: from / 64,
            cur: 0,
            base: 0,
        };
        if c.word < w {
            c.load();
            c.cur &= !0u64 << (from % 64);
        }
        c
    }
}

/// The candidate rules of one chain for one packet, ascending (see
/// [`ChainIndex::candidates`]).
pub struct Cands<'a> {
    rows: [&'a [u64]; 7],
    /// Rows in use (at least one).
    k: usize,
    /// The next word to load.
    word: usize,
    /// Candidates left in the loaded word.
    cur: u64,
    /// Rule number of the loaded word's bit 0.
    base: usize,
}

impl Cands<'_> {
    /// Load word `self.word` (the AND of the rows) and advance.
    #[inline]
    fn load(&mut self) {
        let w = self.word;
        let mut v = self.rows[0][w];
        for r in &self.rows[1..self.k] {
            v &= r[w];
        }
        self.cur = v;
        self.base = w * 64;
        self.word = w + 1;
    }
}

impl Iterator for Cands<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let words = self.rows[0].len();
        while self.cur == 0 {
            if self.word >= words {
                return None;
            }
            self.load();
        }
        let b = self.cur.trailing_zeros() as usize;
        self.cur &= self.cur - 1;
        Some(self.base + b)
    }
}
