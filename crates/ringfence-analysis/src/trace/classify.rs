//! Which rules of a chain can match a packet, found without visiting the
//! others: per-field interval tables of rule bit sets (the bit-vector
//! scheme of packet classification).
//!
//! For each header field a chain's rules test (IPv4 and IPv6 source and
//! destination, protocol, source and destination port, conntrack state),
//! the field's value space is cut into elementary intervals at every
//! boundary of every rule's set; each interval holds the bit set of the
//! rules whose set contains it (one bit per rule, in chain order), after a
//! summary with one bit per non-zero word of rule bits. A packet's
//! candidates are the AND of the rows its values fall in, read lazily: the
//! summaries' AND says which rule words can hold candidates, and only those
//! are ANDed, so a first-match walk that stops early reads only words
//! before the deciding rule, and sparse rows (a chain of single
//! destinations) cost a few words however long the chain. Chains of at
//! most 128 rules (nearly every chain a walk visits) have no summary: their
//! rows are ANDed at once into two words. A field with more than a few
//! intervals (protocol, ports, IPv4 addresses) has a bucket table: its span
//! cut into 256 buckets, each naming the interval its lowest value is in,
//! so a lookup searches the few starts inside one bucket, not all of them.
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

/// Chains of at most this many rule words (64 rules each) have no summary
/// words: a lookup ANDs their rows at once into a few words on the stack.
const SMALL_WORDS: usize = 2;

/// The layout of a chain's rows: `sums` summary words, then `words` rule
/// words (bit `i` of the rule words: rule `i`). Summary bit `j` is set when
/// rule word `j` is non-zero, so a lookup whose rows are sparse reads the
/// few rule words some row has bits in instead of all of them (what keeps
/// a 10,000-rule chain of single destinations cheap per packet). Chains of
/// at most [`SMALL_WORDS`] rule words have no summary (`sums` 0).
#[derive(Debug, Clone, Copy)]
struct Shape {
    sums: usize,
    words: usize,
}

impl Shape {
    fn of(rules: usize) -> Self {
        let words = rules.div_ceil(64).max(1);
        Self {
            sums: if words <= SMALL_WORDS {
                0
            } else {
                words.div_ceil(64)
            },
            words,
        }
    }

    fn stride(self) -> usize {
        self.sums + self.words
    }

    /// Fill a row's summary from its rule words.
    fn summarize(self, row: &mut [u64]) {
        if self.sums == 0 {
            return;
        }
        let (sums, words) = row.split_at_mut(self.sums);
        sums.fill(0);
        for (j, w) in words.iter().enumerate() {
            if *w != 0 {
                sums[j / 64] |= 1 << (j % 64);
            }
        }
    }
}

/// Field values that get a bucket table ([`Field::direct`]): protocol,
/// ports and IPv4 addresses, as numbers.
trait Key: Bound {
    /// Whether the field gets a bucket table.
    const TABLE: bool;
    /// `u32` words a value takes in a [`Compact`] table.
    const WORDS: usize;
    /// The value as a number (0 for a field without a table).
    fn wide(self) -> u64;
    /// Append the value's words, most significant first.
    fn push_words(self, out: &mut Vec<u32>) {
        out.push(self.wide() as u32);
    }
}

impl Key for u8 {
    const TABLE: bool = true;
    const WORDS: usize = 1;
    #[inline]
    fn wide(self) -> u64 {
        u64::from(self)
    }
}

impl Key for u16 {
    const TABLE: bool = true;
    const WORDS: usize = 1;
    #[inline]
    fn wide(self) -> u64 {
        u64::from(self)
    }
}

impl Key for u32 {
    const TABLE: bool = true;
    const WORDS: usize = 1;
    #[inline]
    fn wide(self) -> u64 {
        u64::from(self)
    }
}

impl Key for u128 {
    const TABLE: bool = false;
    const WORDS: usize = 4;
    fn wide(self) -> u64 {
        0
    }
    fn push_words(self, out: &mut Vec<u32>) {
        out.extend([
            (self >> 96) as u32,
            (self >> 64) as u32,
            (self >> 32) as u32,
            self as u32,
        ]);
    }
}

/// Fields with at most this many interval starts are searched without a
/// bucket table (a few comparisons).
const FEW_STARTS: usize = 8;

/// One field's table: elementary intervals by their lowest value, and a
/// row (see [`Shape`]) per interval; for protocol, ports and IPv4
/// addresses with more than [`FEW_STARTS`] intervals also a bucket table:
/// the span from the second interval's start to the last one's cut into 256
/// buckets of `1 << shift` values, and per bucket the interval holding its
/// lowest value, so a lookup searches only the starts inside one bucket.
#[derive(Debug)]
struct Field<K> {
    starts: Vec<K>,
    rows: Vec<u64>,
    /// 257 entries (the last: the last interval), or none.
    direct: Vec<u32>,
    /// The lowest value of bucket 0 (the second interval's start).
    base: u64,
    /// Bucket `h` holds the values `base + (h << shift)` on.
    shift: u32,
}

impl<K: Key> Field<K> {
    /// The table of `sets` (rule `i`'s set is `sets[i]`), or `None` when
    /// every rule holds every value (the field decides nothing) or the
    /// table would exceed [`FIELD_BYTES`].
    fn build<'r>(
        shape: Shape,
        sets: impl Iterator<Item = &'r IntervalSet<K>> + Clone,
    ) -> Option<Self>
    where
        K: 'r,
    {
        let mut f = Self::build_plain(shape, sets)?;
        if K::TABLE && f.starts.len() > FEW_STARTS {
            let starts = &f.starts;
            let base = starts[1].wide();
            let span = starts[starts.len() - 1].wide() - base;
            let mut shift = 0;
            while span >> shift >= 256 {
                shift += 1;
            }
            f.direct = (0..256u64)
                .map(|h| {
                    let lowest = base + (h << shift);
                    (starts.partition_point(|&s| s.wide() <= lowest) - 1) as u32
                })
                .chain(std::iter::once(starts.len() as u32 - 1))
                .collect();
            f.base = base;
            f.shift = shift;
        }
        Some(f)
    }

    /// The intervals and rows alone, without a bucket table.
    fn build_plain<'r>(
        shape: Shape,
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
        let stride = shape.stride();
        if starts.len().saturating_mul(stride).saturating_mul(8) > FIELD_BYTES {
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
        let mut rows = vec![0u64; starts.len() * stride];
        let mut cur = vec![0u64; shape.words];
        let mut e = events.iter().peekable();
        for (j, row) in rows.chunks_exact_mut(stride).enumerate() {
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
            row[shape.sums..].copy_from_slice(&cur);
            shape.summarize(row);
        }
        Some(Self {
            starts,
            rows,
            direct: Vec::new(),
            base: 0,
            shift: 0,
        })
    }

    /// The row of the interval holding `v`.
    #[inline]
    fn row(&self, v: K, stride: usize) -> &[u64] {
        // `starts[0]` is the type's minimum, so some interval holds `v`.
        let j = if K::TABLE && !self.direct.is_empty() {
            let x = v.wide();
            if x < self.base {
                0
            } else {
                let h = ((x - self.base) >> self.shift) as usize;
                if h >= 256 {
                    // Past the last interval's start.
                    self.starts.len() - 1
                } else {
                    // The bucket's first interval or one starting inside it.
                    let (lo, hi) = (self.direct[h] as usize, self.direct[h + 1] as usize);
                    lo + self.starts[lo + 1..=hi].partition_point(|&s| s <= v)
                }
            }
        } else {
            self.starts.partition_point(|&s| s <= v) - 1
        };
        &self.rows[j * stride..(j + 1) * stride]
    }
}

/// The rule tables of one chain.
///
/// The tables index *entries*: usually one per rule, its match; a jump
/// the tracer cuts to what its target can act on may have several, one
/// per piece of the target's effect (see `effect`), or none. Candidates
/// are given as rule numbers, each once.
#[derive(Debug)]
pub struct ChainIndex {
    layout: Layout,
    /// Per entry, its rule; empty when entries are the rules.
    entry_rule: Box<[u32]>,
    /// Per rule, its first entry, and the number of entries last; empty
    /// when entries are the rules.
    rule_entry: Box<[u32]>,
}

/// How a chain's tables are kept: compact for at most [`SMALL_WORDS`]
/// rule words (nearly every chain a walk visits), wide with summary words
/// otherwise.
#[derive(Debug)]
enum Layout {
    /// A short chain's tables in one allocation ([`Compact`]).
    Compact(Compact),
    /// A long chain's tables ([`Tables`]).
    Wide(Box<Tables>),
}

impl ChainIndex {
    /// Tables for the rules whose matches `rules` yields, in chain order.
    #[cfg(test)]
    pub fn build<'r>(rules: impl Iterator<Item = &'r Match> + Clone) -> Self {
        Self::build_entries(rules.enumerate())
    }

    /// Tables for entries `(rule, match)`: rule numbers ascending from 0,
    /// a rule with several entries on consecutive ones, a rule without
    /// any never a candidate.
    pub fn build_entries<'r>(entries: impl Iterator<Item = (usize, &'r Match)> + Clone) -> Self {
        // Every field's table reads the entries again: list them once.
        let entries: Vec<(usize, &Match)> = entries.collect();
        let entries = entries.iter().copied();
        let matches = entries.clone().map(|(_, m)| m);
        let shape = Shape::of(matches.clone().count());
        let layout = if shape.sums == 0 {
            Layout::Compact(Compact::build(shape, matches))
        } else {
            Layout::Wide(Box::new(Tables::build(matches)))
        };
        let one_each = entries.clone().enumerate().all(|(e, (r, _))| e == r);
        let (mut entry_rule, mut rule_entry) = (Vec::new(), Vec::new());
        if !one_each {
            for (e, (r, _)) in entries.enumerate() {
                debug_assert!(entry_rule.last().is_none_or(|&l| l as usize <= r));
                while rule_entry.len() <= r {
                    rule_entry.push(e as u32);
                }
                entry_rule.push(r as u32);
            }
            rule_entry.push(entry_rule.len() as u32);
        }
        Self {
            layout,
            entry_rule: entry_rule.into_boxed_slice(),
            rule_entry: rule_entry.into_boxed_slice(),
        }
    }

    /// The rules from `from` on that can match `p`, ascending.
    #[inline]
    pub fn candidates(&self, p: &Packet, from: usize) -> Cands<'_> {
        let at = if self.rule_entry.is_empty() {
            from
        } else {
            // Past the last rule with entries: past every entry.
            self.rule_entry
                .get(from)
                .map_or(self.entry_rule.len(), |&e| e as usize)
        };
        let raw = match &self.layout {
            Layout::Compact(c) => Raw::Small(c.candidates(p, at)),
            Layout::Wide(t) => t.candidates(p, at),
        };
        Cands {
            raw,
            entry_rule: &self.entry_rule,
            last: u32::MAX,
        }
    }
}

/// A long chain's rule tables: per field, elementary intervals with rows
/// of summary and rule words (see [`Shape`]).
#[derive(Debug)]
pub struct Tables {
    /// How rows are laid out.
    shape: Shape,
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

impl Tables {
    /// Tables for the rules whose matches `rules` yields, in chain order.
    fn build<'r>(rules: impl Iterator<Item = &'r Match> + Clone) -> Self {
        let n = rules.clone().count();
        let shape = Shape::of(n);
        let (sums, stride) = (shape.sums, shape.stride());
        let mut all = vec![0u64; stride];
        for i in 0..n {
            all[sums + i / 64] |= 1 << (i % 64);
        }
        shape.summarize(&mut all);
        let ct = rules.clone().any(|m| m.ct_state.0 & 31 != 31).then(|| {
            let mut rows = vec![0u64; CT_BITS * stride];
            for (i, m) in rules.clone().enumerate() {
                for s in 0..CT_BITS {
                    if m.ct_state.0 & (1 << s) != 0 {
                        rows[s * stride + sums + i / 64] |= 1 << (i % 64);
                    }
                }
            }
            for row in rows.chunks_exact_mut(stride) {
                shape.summarize(row);
            }
            rows
        });
        Self {
            shape,
            src4: Field::build(shape, rules.clone().map(|m| &m.src.v4)),
            dst4: Field::build(shape, rules.clone().map(|m| &m.dst.v4)),
            src6: Field::build(shape, rules.clone().map(|m| &m.src.v6)),
            dst6: Field::build(shape, rules.clone().map(|m| &m.dst.v6)),
            proto: Field::build(shape, rules.clone().map(|m| &m.protocol)),
            sport: Field::build(shape, rules.clone().map(|m| &m.sport)),
            dport: Field::build(shape, rules.clone().map(|m| &m.dport)),
            all,
            ct,
        }
    }

    /// The rules from `from` on that can match `p`, ascending.
    #[inline]
    fn candidates(&self, p: &Packet, from: usize) -> Raw<'_> {
        let mut rows: [&[u64]; 7] = [&self.all; 7];
        let mut k = 0;
        self.rows_for(p, |r| {
            rows[k] = r;
            k += 1;
        });
        let mut c = Wide {
            rows,
            k: k.max(1),
            sums: self.shape.sums,
            from,
            sword: from / 4096,
            scur: 0,
            sbase: 0,
            cur: 0,
            base: 0,
        };
        if c.sword < c.sums {
            c.load_summary();
            // Rule words before `from`'s are not wanted.
            c.scur &= !0u64 << (from / 64 % 64);
        }
        Raw::Wide(c)
    }

    /// Each row the packet's values pick (the fields with tables), to `f`.
    #[inline]
    fn rows_for<'s>(&'s self, p: &Packet, mut f: impl FnMut(&'s [u64])) {
        let stride = self.shape.stride();
        match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if let Some(t) = &self.dst4 {
                    f(t.row(u32::from(d), stride));
                }
                if let Some(t) = &self.src4 {
                    f(t.row(u32::from(s), stride));
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
                    if let Some(t) = &self.dst6 {
                        f(t.row(d, stride));
                    }
                    if let Some(t) = &self.src6 {
                        f(t.row(s, stride));
                    }
                }
            }
        }
        if let Some(t) = &self.dport {
            f(t.row(p.dport, stride));
        }
        if let Some(t) = &self.proto {
            f(t.row(p.protocol, stride));
        }
        if let Some(t) = &self.sport {
            f(t.row(p.sport, stride));
        }
        if let Some(ct) = &self.ct {
            // One state bit (as packets carry): its row; anything else is
            // left to the walk.
            if p.ct_state.count_ones() == 1 && (p.ct_state.trailing_zeros() as usize) < CT_BITS {
                let s = p.ct_state.trailing_zeros() as usize;
                f(&ct[s * stride..(s + 1) * stride]);
            }
        }
    }
}

/// Which header field a [`Compact`] table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dport,
    Proto,
    Dst4,
    Src4,
    Sport,
    Dst6,
    Src6,
    Ct,
}

/// One field of a [`Compact`]: its kind, how many elementary intervals
/// it has, and where its data starts in [`Compact::data`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    kind: Kind,
    starts: u16,
    at: u32,
}

/// Interval starts per block of the two-level search: one cache line of
/// `u32` starts.
const BLOCK: usize = 16;

/// Interval starts of a field of `u32` or narrower values, the first of
/// each [`BLOCK`] again in front (the samples), so a lookup reads the
/// samples' line, one block's line and one row: a few cache lines
/// wherever the chain's tables sit in memory. (The first design, a bucket
/// table per field and a heap block per table, read about 24 lines a
/// chain visit; at 100k rules, with over a thousand chains, most of them
/// missed the core's caches.)
#[inline]
fn find_u32(data: &[u32], n: usize, v: u32) -> usize {
    let ns = n.div_ceil(BLOCK);
    // `starts[0]` is the type's minimum: the first sample and the block's
    // first start are at most `v`. Counting the values at most `v` over
    // a whole block (padded with `u32::MAX`, so the count may run past
    // the last start only when `v` is the maximum) compiles to a few
    // vector compares; a binary search was slower.
    let b = data[..ns].iter().filter(|&&s| s <= v).count() - 1;
    let at = ns + b * BLOCK;
    let block: &[u32; BLOCK] = data[at..at + BLOCK]
        .try_into()
        .expect("a whole block of starts");
    (b * BLOCK + block.iter().filter(|&&s| s <= v).count() - 1).min(n - 1)
}

/// Where a `u32` field's rows start in its data: after the samples and
/// the padded blocks of starts.
#[inline]
fn rows_u32(n: usize) -> usize {
    n.div_ceil(BLOCK) * (1 + BLOCK)
}

/// The tables of a chain of at most [`SMALL_WORDS`] rule words, laid out
/// to be read with few cache misses: the rule bits and each field's place
/// inline, and every field's starts and rows in one allocation. Fields
/// are looked up most selective first (ports and protocol, then
/// addresses), and a lookup stops at the first field that leaves no rule.
#[derive(Debug)]
pub struct Compact {
    /// Every rule's bit (the candidates before any field is asked).
    all: [u64; SMALL_WORDS],
    /// Rule words per row (1 or 2).
    words: u8,
    /// How many of `slots` are in use.
    fields: u8,
    slots: [Slot; 8],
    /// Per field, at its slot's offset: for values of `u32` or narrower,
    /// the samples ([`find_u32`]) and the starts in blocks of [`BLOCK`]
    /// (the last padded with `u32::MAX`), one word each; for IPv6
    /// addresses the starts as four words each, most significant first;
    /// then the rows, `words` rule words each as two halves (low first);
    /// conntrack state has five rows (one per state bit) and no starts.
    data: Box<[u32]>,
}

impl Compact {
    fn build<'r>(shape: Shape, rules: impl Iterator<Item = &'r Match> + Clone) -> Self {
        debug_assert_eq!(shape.sums, 0);
        let mut c = Compact {
            all: [0; SMALL_WORDS],
            words: shape.words as u8,
            fields: 0,
            slots: [Slot {
                kind: Kind::Ct,
                starts: 0,
                at: 0,
            }; 8],
            data: Box::new([]),
        };
        let n = rules.clone().count();
        for i in 0..n {
            c.all[i / 64] |= 1 << (i % 64);
        }
        let mut data = Vec::new();
        c.push(
            &mut data,
            Kind::Dport,
            shape,
            rules.clone().map(|m| &m.dport),
        );
        c.push(
            &mut data,
            Kind::Proto,
            shape,
            rules.clone().map(|m| &m.protocol),
        );
        c.push(
            &mut data,
            Kind::Dst4,
            shape,
            rules.clone().map(|m| &m.dst.v4),
        );
        c.push(
            &mut data,
            Kind::Src4,
            shape,
            rules.clone().map(|m| &m.src.v4),
        );
        c.push(
            &mut data,
            Kind::Sport,
            shape,
            rules.clone().map(|m| &m.sport),
        );
        c.push(
            &mut data,
            Kind::Dst6,
            shape,
            rules.clone().map(|m| &m.dst.v6),
        );
        c.push(
            &mut data,
            Kind::Src6,
            shape,
            rules.clone().map(|m| &m.src.v6),
        );
        if rules.clone().any(|m| m.ct_state.0 & 31 != 31) {
            c.slot(Kind::Ct, 0, data.len());
            let mut rows = vec![0u64; CT_BITS * shape.words];
            for (i, m) in rules.enumerate() {
                for s in 0..CT_BITS {
                    if m.ct_state.0 & (1 << s) != 0 {
                        rows[s * shape.words + i / 64] |= 1 << (i % 64);
                    }
                }
            }
            push_rows(&mut data, &rows);
        }
        c.data = data.into_boxed_slice();
        c
    }

    fn slot(&mut self, kind: Kind, starts: usize, at: usize) {
        self.slots[self.fields as usize] = Slot {
            kind,
            starts: starts as u16,
            at: u32::try_from(at).expect("a short chain's tables fit in 4 GiB"),
        };
        self.fields += 1;
    }

    /// Append the table of one field (none when every rule takes every
    /// value).
    fn push<'r, K: Key + 'r>(
        &mut self,
        data: &mut Vec<u32>,
        kind: Kind,
        shape: Shape,
        sets: impl Iterator<Item = &'r IntervalSet<K>> + Clone,
    ) {
        let Some(f) = Field::build_plain(shape, sets) else {
            return;
        };
        self.slot(kind, f.starts.len(), data.len());
        if K::WORDS == 1 {
            data.extend(f.starts.iter().step_by(BLOCK).map(|&k| k.wide() as u32));
            let blocks = f.starts.len().div_ceil(BLOCK) * BLOCK;
            data.extend(f.starts.iter().map(|&k| k.wide() as u32));
            data.extend(std::iter::repeat_n(u32::MAX, blocks - f.starts.len()));
        } else {
            for &k in &f.starts {
                k.push_words(data);
            }
        }
        push_rows(data, &f.rows);
    }

    /// The rules from `from` on that can match `p`: the AND of the
    /// packet's rows, at once.
    #[inline]
    fn candidates(&self, p: &Packet, from: usize) -> Small {
        let mut bits = self.all;
        let words = self.words as usize;
        let v4 = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((u32::from(s), u32::from(d))),
            _ => None,
        };
        let v6 = match (p.src, p.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => Some((u128::from(s), u128::from(d))),
            _ => None,
        };
        for slot in &self.slots[..self.fields as usize] {
            let n = slot.starts as usize;
            let d = &self.data[slot.at as usize..];
            // The row's offset in `d`, or none when the field does not
            // apply to this packet (addresses of the other family; a
            // packet with other than one conntrack state bit).
            let row = match slot.kind {
                Kind::Dport => Some(rows_u32(n) + find_u32(d, n, u32::from(p.dport)) * 2 * words),
                Kind::Proto => {
                    Some(rows_u32(n) + find_u32(d, n, u32::from(p.protocol)) * 2 * words)
                }
                Kind::Sport => Some(rows_u32(n) + find_u32(d, n, u32::from(p.sport)) * 2 * words),
                Kind::Dst4 => v4.map(|(_, a)| rows_u32(n) + find_u32(d, n, a) * 2 * words),
                Kind::Src4 => v4.map(|(a, _)| rows_u32(n) + find_u32(d, n, a) * 2 * words),
                Kind::Dst6 => v6.map(|(_, a)| 4 * n + find_u128(d, n, a) * 2 * words),
                Kind::Src6 => v6.map(|(a, _)| 4 * n + find_u128(d, n, a) * 2 * words),
                Kind::Ct => (p.ct_state.count_ones() == 1
                    && (p.ct_state.trailing_zeros() as usize) < CT_BITS)
                    .then(|| p.ct_state.trailing_zeros() as usize * 2 * words),
            };
            let Some(r) = row else { continue };
            let mut any = 0;
            for (j, b) in bits.iter_mut().enumerate().take(words) {
                *b &= u64::from(d[r + 2 * j]) | u64::from(d[r + 2 * j + 1]) << 32;
                any |= *b;
            }
            if any == 0 {
                return Small { bits, word: 0 };
            }
        }
        // Rules before `from` are not wanted.
        for (j, b) in bits.iter_mut().enumerate() {
            let lo = j * 64;
            if from >= lo + 64 {
                *b = 0;
            } else if from > lo {
                *b &= !0u64 << (from - lo);
            }
        }
        Small { bits, word: 0 }
    }
}

/// Rows of `u64` rule words as two `u32` halves each, low first.
fn push_rows(data: &mut Vec<u32>, rows: &[u64]) {
    for &w in rows {
        data.push(w as u32);
        data.push((w >> 32) as u32);
    }
}

/// The interval holding `v` among `n` IPv6 starts (four words each, most
/// significant first) at the front of `data`.
fn find_u128(data: &[u32], n: usize, v: u128) -> usize {
    let at = |j: usize| {
        data[4 * j..4 * j + 4]
            .iter()
            .fold(0u128, |acc, &w| acc << 32 | u128::from(w))
    };
    // Starts ascending from the minimum: the last start at most `v`.
    let (mut lo, mut hi) = (0, n);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if at(mid) <= v {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The candidate rules of one chain for one packet, ascending, each once
/// (see [`ChainIndex::candidates`]).
pub struct Cands<'a> {
    raw: Raw<'a>,
    /// Per entry its rule (empty: entries are rules).
    entry_rule: &'a [u32],
    /// The rule last given (`u32::MAX` before the first).
    last: u32,
}

impl Cands<'_> {
    /// Every rule in `rules` (a chain without tables).
    pub fn all(rules: std::ops::Range<usize>) -> Self {
        Cands {
            raw: Raw::All(rules),
            entry_rule: &[],
            last: u32::MAX,
        }
    }
}

/// Candidate entries, ascending.
enum Raw<'a> {
    /// Every rule of a chain without tables from the first one asked for
    /// (one flat enum with the others, so the walk's loop inlines all three).
    All(std::ops::Range<usize>),
    /// A chain of at most [`SMALL_WORDS`] rule words: the candidates as bits.
    Small(Small),
    /// A longer chain: its rows read lazily through their summaries.
    Wide(Wide<'a>),
}

impl Iterator for Cands<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        loop {
            let e = match &mut self.raw {
                Raw::All(r) => r.next(),
                Raw::Small(c) => c.next(),
                Raw::Wide(c) => c.next(),
            }?;
            if self.entry_rule.is_empty() {
                return Some(e);
            }
            // A rule's entries are consecutive: a repeat follows its first.
            let r = self.entry_rule[e];
            if r != self.last {
                self.last = r;
                return Some(r as usize);
            }
        }
    }
}

/// A small chain's candidates, one bit per rule.
pub struct Small {
    bits: [u64; SMALL_WORDS],
    /// The word being read.
    word: usize,
}

impl Iterator for Small {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.word < SMALL_WORDS {
            let w = &mut self.bits[self.word];
            if *w != 0 {
                let b = w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(self.word * 64 + b);
            }
            self.word += 1;
        }
        None
    }
}

/// A long chain's candidates: the packet's rows, ANDed a summary word and
/// a rule word at a time as the walk asks for more.
pub struct Wide<'a> {
    /// The packet's rows ([`Shape`] layout), the first `k` in use.
    rows: [&'a [u64]; 7],
    k: usize,
    /// Summary words per row.
    sums: usize,
    /// The first rule wanted.
    from: usize,
    /// The next summary word to load.
    sword: usize,
    /// Rule words left to read in the loaded summary word (AND of the rows').
    scur: u64,
    /// Rule word number of the loaded summary word's bit 0.
    sbase: usize,
    /// Candidates left in the loaded rule word.
    cur: u64,
    /// Rule number of the loaded rule word's bit 0.
    base: usize,
}

impl Wide<'_> {
    /// Load summary word `self.sword` (the AND of the rows') and advance.
    #[inline]
    fn load_summary(&mut self) {
        let w = self.sword;
        let mut v = self.rows[0][w];
        for r in &self.rows[1..self.k] {
            v &= r[w];
        }
        self.scur = v;
        self.sbase = w * 64;
        self.sword = w + 1;
    }
}

impl Iterator for Wide<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.cur == 0 {
            while self.scur == 0 {
                if self.sword >= self.sums {
                    return None;
                }
                self.load_summary();
            }
            let j = self.sbase + self.scur.trailing_zeros() as usize;
            self.scur &= self.scur - 1;
            let at = self.sums + j;
            let mut v = self.rows[0][at];
            for r in &self.rows[1..self.k] {
                v &= r[at];
            }
            if j == self.from / 64 {
                v &= !0u64 << (self.from % 64);
            }
            self.cur = v;
            self.base = j * 64;
        }
        let b = self.cur.trailing_zeros() as usize;
        self.cur &= self.cur - 1;
        Some(self.base + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_model::CtStates;
    /// The seeded generator: the same rules and packets on every run.
    use ringfence_testkit::Rng;

    /// A set over a small window of values: full, one value, a range, a
    /// negated range (two ranges), or empty.
    fn set<K: Bound + From<u8> + std::ops::Add<Output = K>>(
        r: &mut Rng,
        base: K,
    ) -> IntervalSet<K> {
        let a = base + K::from(r.below(40) as u8);
        let b = a + K::from(r.below(8) as u8);
        match r.below(6) {
            0 | 1 => IntervalSet::full(),
            2 => IntervalSet::single(a),
            3 => IntervalSet::range(a, b),
            4 => IntervalSet::range(a, b).complement(),
            _ => IntervalSet::empty(),
        }
    }

    fn a_match(r: &mut Rng) -> Match {
        let mut m = Match::any();
        m.src.v4 = set(r, 0x0a00_0000u32);
        m.dst.v4 = set(r, 0xac10_0000u32);
        m.src.v6 = set(r, 0x2001_0db8u128 << 96);
        m.dst.v6 = set(r, 0x2001_0db8u128 << 96);
        m.protocol = [
            IntervalSet::full(),
            IntervalSet::single(6),
            IntervalSet::single(17),
        ][r.below(3) as usize]
            .clone();
        m.sport = set(r, 1000u16);
        m.dport = set(r, 0u16);
        if r.below(4) == 0 {
            m.ct_state = CtStates(CtStates::NEW);
        }
        m
    }

    /// The rules from `from` on whose indexed fields all hold the packet.
    fn brute(rules: &[Match], p: &Packet, from: usize) -> Vec<usize> {
        (from..rules.len())
            .filter(|&i| {
                let m = &rules[i];
                m.src.contains(p.src)
                    && m.dst.contains(p.dst)
                    && m.protocol.contains(p.protocol)
                    && m.sport.contains(p.sport)
                    && m.dport.contains(p.dport)
                    && m.ct_state.contains(p.ct_state)
            })
            .collect()
    }

    #[test]
    fn candidates_are_exactly_the_rules_whose_indexed_fields_hold_the_packet() {
        let mut r = Rng::from_state(0x9e37_79b9_7f4a_7c15);
        // Short, one-word, multi-word and multi-summary-word chains.
        for n in [1usize, 17, 64, 65, 128, 129, 300, 4096, 4097, 9000] {
            let rules: Vec<Match> = (0..n).map(|_| a_match(&mut r)).collect();
            let ix = ChainIndex::build(rules.iter());
            for k in 0..300 {
                let v6 = k % 4 == 0;
                let (src, dst) = if v6 {
                    let base = 0x2001_0db8u128 << 96;
                    (
                        IpAddr::from(std::net::Ipv6Addr::from(
                            base + u128::from(r.below(50) as u8),
                        )),
                        IpAddr::from(std::net::Ipv6Addr::from(
                            base + u128::from(r.below(50) as u8),
                        )),
                    )
                } else {
                    (
                        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + r.below(50) as u32)),
                        IpAddr::from(std::net::Ipv4Addr::from(0xac10_0000 + r.below(50) as u32)),
                    )
                };
                let mut p = Packet::new_connection(
                    src,
                    dst,
                    [6, 17, 1][r.below(3) as usize],
                    1000 + r.below(50) as u16,
                    r.below(50) as u16,
                );
                if k % 5 == 0 {
                    p.ct_state = CtStates::ESTABLISHED;
                }
                let from = match k % 3 {
                    0 => 0,
                    _ => r.below(n as u64 + 2) as usize,
                };
                let got: Vec<usize> = ix.candidates(&p, from).collect();
                assert_eq!(
                    got,
                    brute(&rules, &p, from),
                    "{n} rules, from {from}, {p:?}"
                );
            }
        }
    }

    #[test]
    fn bucket_tables_find_the_interval_of_every_protocol_port_and_address_value() {
        let mut r = Rng::from_state(0x51ed_270b_9d4c_1a33);
        for rules in [3usize, 40, 200] {
            let shape = Shape::of(rules);
            // Ports anywhere, bucket edges included, and crowded low ports.
            let ports: Vec<IntervalSet<u16>> = (0..rules)
                .map(|_| {
                    let a = match r.below(4) {
                        0 => r.below(300) as u16,
                        1 => (r.below(256) as u16) << 8,
                        2 => u16::MAX - r.below(3) as u16,
                        _ => r.below(65536) as u16,
                    };
                    let b = a.saturating_add(r.below(700) as u16);
                    match r.below(3) {
                        0 => IntervalSet::single(a),
                        1 => IntervalSet::range(a, b),
                        _ => IntervalSet::range(a, b).complement(),
                    }
                })
                .collect();
            let f = Field::build(shape, ports.iter()).expect("a table");
            let stride = shape.stride();
            for v in 0..=u16::MAX {
                let j = f.starts.partition_point(|&s| s <= v) - 1;
                assert_eq!(
                    f.row(v, stride),
                    &f.rows[j * stride..(j + 1) * stride],
                    "{v}"
                );
            }
            let protos: Vec<IntervalSet<u8>> = (0..rules)
                .map(|_| IntervalSet::single(r.below(256) as u8))
                .collect();
            let f = Field::build(shape, protos.iter()).expect("a table");
            for v in 0..=u8::MAX {
                let j = f.starts.partition_point(|&s| s <= v) - 1;
                assert_eq!(
                    f.row(v, stride),
                    &f.rows[j * stride..(j + 1) * stride],
                    "{v}"
                );
            }
            // Addresses: ranges crowded in one /12 and a few anywhere or at
            // the top, probed at every interval edge, at the ends and at random.
            let addrs: Vec<IntervalSet<u32>> = (0..rules)
                .map(|_| {
                    let a = match r.below(5) {
                        0 => r.below(1 << 32) as u32,
                        1 => u32::MAX - r.below(4) as u32,
                        _ => 0xac10_0000 + r.below(1 << 20) as u32,
                    };
                    let b = a.saturating_add(r.below(1 << 12) as u32);
                    match r.below(3) {
                        0 => IntervalSet::single(a),
                        1 => IntervalSet::range(a, b),
                        _ => IntervalSet::range(a, b).complement(),
                    }
                })
                .collect();
            let f = Field::build(shape, addrs.iter()).expect("a table");
            assert_eq!(f.direct.is_empty(), f.starts.len() <= FEW_STARTS);
            let mut probes: Vec<u32> = vec![0, 1, u32::MAX - 1, u32::MAX];
            for &st in &f.starts {
                probes.extend([st.wrapping_sub(1), st, st.wrapping_add(1)]);
            }
            probes.extend((0..2000).map(|_| r.below(1 << 32) as u32));
            probes.extend((0..2000).map(|_| 0xac10_0000 + r.below(1 << 20) as u32));
            for v in probes {
                let j = f.starts.partition_point(|&s| s <= v) - 1;
                assert_eq!(
                    f.row(v, stride),
                    &f.rows[j * stride..(j + 1) * stride],
                    "{v:#x}"
                );
            }
        }
    }

    #[test]
    fn a_field_every_rule_leaves_open_gets_no_table() {
        let p = Packet::new_connection(
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            6,
            1,
            2,
        );
        // A short chain (compact tables) and a long one (wide tables).
        for n in [40usize, 300] {
            let rules = vec![Match::any(); n];
            let ix = ChainIndex::build(rules.iter());
            match &ix.layout {
                Layout::Compact(c) => {
                    assert_eq!(n, 40);
                    assert_eq!(c.fields, 0);
                }
                Layout::Wide(t) => {
                    assert_eq!(n, 300);
                    assert!(t.src4.is_none() && t.dst4.is_none() && t.dport.is_none());
                    assert!(t.proto.is_none() && t.sport.is_none() && t.ct.is_none());
                }
            }
            assert_eq!(ix.candidates(&p, 0).count(), n);
            assert_eq!(ix.candidates(&p, n - 1).collect::<Vec<_>>(), [n - 1]);
            assert_eq!(ix.candidates(&p, n).count(), 0);
        }
    }

    #[test]
    fn rules_with_several_entries_or_none_are_each_a_candidate_once_when_one_entry_holds() {
        let mut r = Rng::from_state(0x6a09_e667_f3bc_c908);
        // Short and long tables: entries per rule 0-3.
        for rules in [5usize, 40, 100, 400] {
            let per: Vec<Vec<Match>> = (0..rules)
                .map(|_| (0..r.below(4)).map(|_| a_match(&mut r)).collect())
                .collect();
            let entries: Vec<(usize, &Match)> = per
                .iter()
                .enumerate()
                .flat_map(|(i, v)| v.iter().map(move |m| (i, m)))
                .collect();
            let ix = ChainIndex::build_entries(entries.iter().copied());
            for k in 0..200 {
                let p = Packet::new_connection(
                    IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + r.below(50) as u32)),
                    IpAddr::from(std::net::Ipv4Addr::from(0xac10_0000 + r.below(50) as u32)),
                    [6, 17, 1][r.below(3) as usize],
                    1000 + r.below(50) as u16,
                    r.below(50) as u16,
                );
                let from = if k % 2 == 0 {
                    0
                } else {
                    r.below(rules as u64 + 2) as usize
                };
                let want: Vec<usize> = (from..rules)
                    .filter(|&i| !brute(&per[i], &p, 0).is_empty())
                    .collect();
                let got: Vec<usize> = ix.candidates(&p, from).collect();
                assert_eq!(got, want, "{rules} rules, from {from}, {p:?}");
            }
        }
    }

    #[test]
    fn compact_lookups_find_the_interval_of_every_value_at_block_edges_and_the_maximum() {
        let mut r = Rng::from_state(0x2545_f491_4f6c_dd1d);
        // Up to 257 starts (128 rules, two ends each): several blocks, the
        // last one partly padding.
        for rules in [1usize, 7, 8, 9, 31, 64, 100, 128] {
            let sets: Vec<IntervalSet<u32>> = (0..rules)
                .map(|_| {
                    let a = match r.below(4) {
                        0 => u32::MAX - r.below(3) as u32,
                        1 => r.below(4) as u32,
                        _ => 0xac10_0000 + r.below(1 << 16) as u32,
                    };
                    IntervalSet::range(a, a.saturating_add(r.below(64) as u32))
                })
                .collect();
            let shape = Shape::of(rules);
            let Some(f) = Field::build_plain(shape, sets.iter()) else {
                continue;
            };
            let mut c = Compact::build(shape, std::iter::empty());
            let mut data = Vec::new();
            c.push(&mut data, Kind::Dst4, shape, sets.iter());
            let n = f.starts.len();
            let mut probes = vec![0, 1, u32::MAX - 1, u32::MAX];
            for &s in &f.starts {
                probes.extend([s.wrapping_sub(1), s, s.wrapping_add(1)]);
            }
            for v in probes {
                let want = f.starts.partition_point(|&s| s <= v) - 1;
                assert_eq!(find_u32(&data, n, v), want, "{rules} rules, {v:#x}");
            }
        }
    }
}
