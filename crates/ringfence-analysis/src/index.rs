//! A static index of items by the hull of their destination addresses.
//!
//! Items are grouped in classes by the width of their hull (powers of 16);
//! inside a class they are sorted by the hull's low end, so the items whose
//! hull may contain a point or meet a range are found by binary search.
//! Large rulesets are dominated by narrow destinations (a service address, a
//! subnet), so a lookup touches few items.

use crate::space::Fam;

/// Entries per block of an IPv4 class's two-level search.
const FENCE: usize = 32;

#[derive(Debug, Clone, Default)]
struct Class {
    /// (lo, hi, item), sorted by lo.
    entries: Vec<(u128, u128, u32)>,
    /// For IPv4 classes: the entries' low ends as u32, so the binary search
    /// reads a dense array (a twelfth of the entries' size) instead of
    /// missing the cache on every probe.
    los4: Vec<u32>,
    /// Every `FENCE`-th entry of `los4`: a first search over these (a few
    /// hundred bytes, cache-resident) leaves one block of `FENCE` entries.
    fences: Vec<u32>,
    /// Largest hi - lo in the class.
    max_width: u128,
    /// Smallest lo and largest hi: queries outside skip the class.
    span: (u128, u128),
}

/// Index of item ids by destination hull, per family.
#[derive(Debug, Clone, Default)]
pub struct DstIndex {
    classes: [Vec<Class>; 2],
}

fn class_of(width: u128) -> usize {
    // 0 for single addresses, then one class per 4 bits of width.
    let bits = 128 - width.leading_zeros() as usize;
    bits.div_ceil(4)
}

fn fam_slot(f: Fam) -> usize {
    match f {
        Fam::V4 => 0,
        Fam::V6 => 1,
    }
}

impl DstIndex {
    /// Build from `(family, lo, hi, item)`; item ids are returned in ascending order by lookups.
    pub fn build(items: impl IntoIterator<Item = (Fam, u128, u128, u32)>) -> Self {
        // Sorted by (family, class, lo) and cut into classes: only non-empty
        // classes are ever allocated (most chains are short, and an engine
        // builds one index per chain).
        let mut all: Vec<(usize, usize, u128, u128, u32)> = items
            .into_iter()
            .map(|(fam, lo, hi, id)| (fam_slot(fam), class_of(hi - lo), lo, hi, id))
            .collect();
        all.sort_unstable_by_key(|e| (e.0, e.1, e.2));
        let mut classes: [Vec<Class>; 2] = [Vec::new(), Vec::new()];
        for group in all.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let slot = group[0].0;
            let entries: Vec<(u128, u128, u32)> = group.iter().map(|e| (e.2, e.3, e.4)).collect();
            let max_width = entries.iter().map(|e| e.1 - e.0).max().unwrap_or(0);
            // IPv4 boxes and rules keep addresses below 2^32.
            let los4 = if slot == fam_slot(Fam::V4) {
                entries
                    .iter()
                    .map(|e| u32::try_from(e.0).unwrap_or(u32::MAX))
                    .collect()
            } else {
                Vec::new()
            };
            let fences = los4.iter().step_by(FENCE).copied().collect();
            let span = (
                entries.first().map_or(0, |e| e.0),
                entries.iter().map(|e| e.1).max().unwrap_or(0),
            );
            classes[slot].push(Class {
                entries,
                los4,
                fences,
                max_width,
                span,
            });
        }
        Self { classes }
    }

    /// Append to `out` the ids of items whose hull meets `[lo, hi]`, unsorted.
    pub fn query_into(&self, fam: Fam, lo: u128, hi: u128, out: &mut Vec<u32>) {
        self.query_below(fam, lo, hi, u32::MAX, out);
    }

    /// [`DstIndex::query_into`] for the items with ids below `below` only.
    pub fn query_below(&self, fam: Fam, lo: u128, hi: u128, below: u32, out: &mut Vec<u32>) {
        for c in &self.classes[fam_slot(fam)] {
            if hi < c.span.0 || lo > c.span.1 {
                continue;
            }
            let from = lo.saturating_sub(c.max_width);
            let start = match u32::try_from(from) {
                Ok(f) if c.los4.len() == c.entries.len() && !c.los4.is_empty() => {
                    // The answer lies after every block whose fence is below
                    // `f` but one, and at or before the first fence >= f.
                    let b = c.fences.partition_point(|&l| l < f);
                    let from = b.saturating_sub(1) * FENCE;
                    let to = (b * FENCE).min(c.los4.len());
                    from + c.los4[from..to].partition_point(|&l| l < f)
                }
                _ => c.entries.partition_point(|e| e.0 < from),
            };
            for &(elo, ehi, id) in &c.entries[start..] {
                if elo > hi {
                    break;
                }
                if ehi >= lo && id < below {
                    out.push(id);
                }
            }
        }
    }

    /// Ids of items whose hull meets `[lo, hi]`, ascending.
    pub fn query(&self, fam: Fam, lo: u128, hi: u128) -> Vec<u32> {
        let mut out = Vec::new();
        self.query_into(fam, lo, hi, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The smallest single range holding each of a box's address, port and
/// protocol fields: two boxes whose hulls do not meet share no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hull {
    /// Source addresses.
    pub src: (u128, u128),
    /// Destination addresses.
    pub dst: (u128, u128),
    /// Destination ports.
    pub dport: (u16, u16),
    /// IP protocols.
    pub proto: (u8, u8),
}

fn hull_of<T: Copy>(r: &[(T, T)], empty: (T, T)) -> (T, T) {
    match (r.first(), r.last()) {
        (Some(a), Some(b)) => (a.0, b.1),
        _ => empty,
    }
}

impl Hull {
    /// The hull of a box (an empty field gives an empty range).
    pub fn of(b: &crate::space::PBox) -> Self {
        Self {
            src: hull_of(b.src.ranges(), (1, 0)),
            dst: hull_of(b.dst.ranges(), (1, 0)),
            dport: hull_of(b.dport.ranges(), (1, 0)),
            proto: hull_of(b.proto.ranges(), (1, 0)),
        }
    }

    /// Whether the hulls meet in every field.
    #[inline]
    pub fn meets(&self, o: &Hull) -> bool {
        Near::<u128>::of(self).meets(&Near::of(o))
    }
}

/// Items per leaf of a [`BoxIndex`] tree.
const LEAF: usize = 8;

/// An address as a tree stores it: IPv4 trees keep 32-bit addresses, so
/// their nodes and items take a third of the memory (a query of a large
/// plan reads several megabytes of them, and misses the cache less).
trait Addr: Copy + Ord + Default + std::fmt::Debug {
    fn from_wide(v: u128) -> Self;
    fn wide(self) -> u128;
}

impl Addr for u32 {
    #[inline]
    fn from_wide(v: u128) -> Self {
        // IPv4 boxes keep addresses below 2^32; an empty range's bounds
        // (1, 0) stay as they are.
        u32::try_from(v).unwrap_or(u32::MAX)
    }
    #[inline]
    fn wide(self) -> u128 {
        self as u128
    }
}

impl Addr for u128 {
    #[inline]
    fn from_wide(v: u128) -> Self {
        v
    }
    #[inline]
    fn wide(self) -> u128 {
        self
    }
}

/// A [`Hull`] with addresses of width `A`.
#[derive(Debug, Clone, Copy, Default)]
struct Near<A> {
    src: (A, A),
    dst: (A, A),
    dport: (u16, u16),
    proto: (u8, u8),
}

impl<A: Addr> Near<A> {
    fn of(h: &Hull) -> Self {
        let a = |(lo, hi): (u128, u128)| (A::from_wide(lo), A::from_wide(hi));
        Self {
            src: a(h.src),
            dst: a(h.dst),
            dport: h.dport,
            proto: h.proto,
        }
    }

    #[inline]
    fn meets(&self, o: &Self) -> bool {
        self.dst.0 <= o.dst.1
            && o.dst.0 <= self.dst.1
            && self.src.0 <= o.src.1
            && o.src.0 <= self.src.1
            && self.dport.0 <= o.dport.1
            && o.dport.0 <= self.dport.1
            && self.proto.0 <= o.proto.1
            && o.proto.0 <= self.proto.1
    }

    fn join(&self, o: &Self) -> Self {
        Self {
            src: (self.src.0.min(o.src.0), self.src.1.max(o.src.1)),
            dst: (self.dst.0.min(o.dst.0), self.dst.1.max(o.dst.1)),
            dport: (self.dport.0.min(o.dport.0), self.dport.1.max(o.dport.1)),
            proto: (self.proto.0.min(o.proto.0), self.proto.1.max(o.proto.1)),
        }
    }

    /// The field a split dimension names (source, destination, port).
    fn dim(&self, d: usize) -> (u128, u128) {
        match d {
            0 => (self.src.0.wide(), self.src.1.wide()),
            1 => (self.dst.0.wide(), self.dst.1.wide()),
            _ => (self.dport.0 as u128, self.dport.1 as u128),
        }
    }

    /// Centre of the hull along split dimension `d`.
    fn centre(&self, d: usize) -> u128 {
        let (lo, hi) = self.dim(d);
        lo / 2 + hi / 2 + (lo & hi & 1)
    }

    /// Width of the hull along split dimension `d`.
    fn width(&self, d: usize) -> u128 {
        let (lo, hi) = self.dim(d);
        hi.saturating_sub(lo)
    }
}

#[derive(Debug, Clone)]
struct Node<A> {
    hull: Near<A>,
    /// Items `[start, end)` of the tree's item array.
    start: u32,
    end: u32,
    /// Children (node ids), or `u32::MAX` for a leaf.
    left: u32,
    right: u32,
    /// The smallest item id in the subtree: a query for ids below a bound
    /// passes over subtrees that hold none.
    min_id: u32,
}

#[derive(Debug, Clone, Default)]
struct Tree<A> {
    nodes: Vec<Node<A>>,
    items: Vec<(Near<A>, u32)>,
}

impl<A: Addr> Tree<A> {
    fn build(mut items: Vec<(Near<A>, u32)>) -> Self {
        let mut nodes = Vec::new();
        if !items.is_empty() {
            let n = items.len();
            split(&mut items, 0, n, &mut nodes);
        }
        Self { nodes, items }
    }

    fn query_into(&self, q: &Hull, below: u32, out: &mut Vec<u32>) {
        if self.nodes.is_empty() {
            return;
        }
        let q = Near::<A>::of(q);
        let mut stack: smallvec::SmallVec<[u32; 64]> = smallvec::smallvec![0];
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            if node.min_id >= below || !node.hull.meets(&q) {
                continue;
            }
            if node.left == u32::MAX {
                for (h, id) in &self.items[node.start as usize..node.end as usize] {
                    if *id < below && h.meets(&q) {
                        out.push(*id);
                    }
                }
            } else {
                stack.push(node.right);
                stack.push(node.left);
            }
        }
    }
}

/// A static bounding-box tree over items by their [`Hull`] (source,
/// destination, destination port and protocol at once), per family: a
/// query finds the items whose hull meets a box's hull, so a box with a
/// wide destination (a negated or missing `-d`) still meets only the items
/// that overlap it in source and port. Built top down: each node splits its
/// items at the median centre of the field that leaves the two halves the
/// smallest hulls.
#[derive(Debug, Clone, Default)]
pub struct BoxIndex {
    v4: Tree<u32>,
    v6: Tree<u128>,
}

impl BoxIndex {
    /// Build from `(family, hull, item)`.
    pub fn build(items: impl IntoIterator<Item = (Fam, Hull, u32)>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (fam, h, id) in items {
            match fam {
                Fam::V4 => v4.push((Near::of(&h), id)),
                Fam::V6 => v6.push((Near::of(&h), id)),
            }
        }
        Self {
            v4: Tree::build(v4),
            v6: Tree::build(v6),
        }
    }

    /// Append to `out` the ids of items whose hull meets `q`, unsorted.
    pub fn query_into(&self, fam: Fam, q: &Hull, out: &mut Vec<u32>) {
        self.query_below(fam, q, u32::MAX, out);
    }

    /// [`BoxIndex::query_into`] for the items with ids below `below` only.
    pub fn query_below(&self, fam: Fam, q: &Hull, below: u32, out: &mut Vec<u32>) {
        match fam {
            Fam::V4 => self.v4.query_into(q, below, out),
            Fam::V6 => self.v6.query_into(q, below, out),
        }
    }
}

/// A [`BoxIndex`] per block of consecutive ids, the blocks growing
/// geometrically ([`Blocked::FIRST`] ids, then twice as many, and so on):
/// a query can take the blocks one at a time, in id order, and stop when
/// it has what it needs. A walk down a plan that is over after its first
/// boxes (every fragment decided) fetches only the first blocks'
/// candidates, where one tree over the whole plan hands out all of them,
/// and a walk that goes the whole way asks a few trees (seven for 200k
/// boxes), not one per block of a fixed size.
#[derive(Debug, Clone, Default)]
pub struct Blocked {
    blocks: Vec<BoxIndex>,
}

impl Blocked {
    /// Ids in the first block.
    pub const FIRST: u32 = 2048;

    /// The block that holds id `id`.
    pub fn block_of(id: u32) -> usize {
        (u64::from(id) / u64::from(Self::FIRST) + 1).ilog2() as usize
    }

    /// The first id after block `k`.
    pub fn block_end(k: usize) -> u64 {
        u64::from(Self::FIRST) * ((1u64 << (k + 1).min(40)) - 1)
    }

    /// Build from `(family, hull, item)`.
    pub fn build(items: impl IntoIterator<Item = (Fam, Hull, u32)>) -> Self {
        let mut by_block: Vec<Vec<(Fam, Hull, u32)>> = Vec::new();
        for (fam, h, id) in items {
            let k = Self::block_of(id);
            if by_block.len() <= k {
                by_block.resize_with(k + 1, Vec::new);
            }
            by_block[k].push((fam, h, id));
        }
        Self {
            blocks: by_block.into_iter().map(BoxIndex::build).collect(),
        }
    }

    /// Append to `out` the ids of block `k` whose hull meets `q` and that
    /// are below `below`, unsorted.
    pub fn query_block(&self, k: usize, fam: Fam, q: &Hull, below: u32, out: &mut Vec<u32>) {
        if let Some(b) = self.blocks.get(k) {
            b.query_below(fam, q, below, out);
        }
    }

    /// Append to `out` the ids below `below` whose hull meets `q`, unsorted.
    pub fn query_below(&self, fam: Fam, q: &Hull, below: u32, out: &mut Vec<u32>) {
        for (k, b) in self.blocks.iter().enumerate() {
            if k > 0 && Self::block_end(k - 1) >= u64::from(below) {
                break;
            }
            b.query_below(fam, q, below, out);
        }
    }
}

/// Build the subtree over `items[start..end]`; returns its node id.
fn split<A: Addr>(
    items: &mut [(Near<A>, u32)],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node<A>>,
) -> u32 {
    let part = &mut items[start..end];
    let hull = part[1..].iter().fold(part[0].0, |h, (x, _)| h.join(x));
    let min_id = part.iter().map(|(_, i)| *i).min().unwrap_or(u32::MAX);
    let id = nodes.len() as u32;
    nodes.push(Node {
        hull,
        start: start as u32,
        end: end as u32,
        left: u32::MAX,
        right: u32::MAX,
        min_id,
    });
    if part.len() <= LEAF {
        return id;
    }
    // Split along the field whose item centres spread the most, relative
    // to the items' typical width there (log scale): halves that differ in
    // that field are the most likely to be told apart by a query.
    let mid = part.len() / 2;
    let mut best = (0u32, 0usize);
    for d in 0..3 {
        let (mut lo, mut hi) = (u128::MAX, 0u128);
        for (h, _) in part.iter() {
            let c = h.centre(d);
            lo = lo.min(c);
            hi = hi.max(c);
        }
        let w = part[mid].0.width(d);
        let spread = (128 - (hi - lo).leading_zeros()).saturating_sub(128 - w.leading_zeros());
        if spread > best.0 {
            best = (spread, d);
        }
    }
    part.select_nth_unstable_by_key(mid, |(h, _)| h.centre(best.1));
    let left = split(items, start, start + mid, nodes);
    let right = split(items, start + mid, end, nodes);
    nodes[id as usize].left = left;
    nodes[id as usize].right = right;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_items_whose_hull_meets_the_query() {
        let items = vec![
            (Fam::V4, 10, 10, 0),
            (Fam::V4, 0, u32::MAX as u128, 1),
            (Fam::V4, 5, 300, 2),
            (Fam::V6, 10, 10, 3),
            (Fam::V4, 11, 20, 4),
        ];
        let idx = DstIndex::build(items);
        assert_eq!(idx.query(Fam::V4, 10, 10), vec![0, 1, 2]);
        assert_eq!(idx.query(Fam::V4, 301, 400), vec![1]);
        assert_eq!(idx.query(Fam::V4, 12, 12), vec![1, 2, 4]);
        assert_eq!(idx.query(Fam::V6, 0, 100), vec![3]);
    }

    #[test]
    fn two_level_search_finds_what_a_scan_finds() {
        // Many entries per class, so the fences matter; queries everywhere.
        let mut items = Vec::new();
        let mut x: u64 = 12345;
        for id in 0..3000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let lo = (x >> 40) as u128 % 5000;
            let w = [0u128, 0, 3, 40, 300][(x % 5) as usize];
            items.push((Fam::V4, lo, lo + w, id));
        }
        let idx = DstIndex::build(items.clone());
        for q in (0..5400u128).step_by(7) {
            let want: Vec<u32> = items
                .iter()
                .filter(|(_, lo, hi, _)| *lo <= q && q <= *hi)
                .map(|i| i.3)
                .collect();
            let mut want = want;
            want.sort_unstable();
            assert_eq!(idx.query(Fam::V4, q, q), want, "point {q}");
        }
    }

    #[test]
    fn box_tree_finds_what_a_scan_finds_with_wide_and_negated_fields() {
        // Mixed shapes: hosts, subnets, wide (negated) destinations, port
        // ranges, both families; queries of every kind.
        let mut x: u64 = 99;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let hull = |next: &mut dyn FnMut() -> u64| {
            let side = |wide: bool, next: &mut dyn FnMut() -> u64| {
                let lo = (next() % 100_000) as u128;
                let w = if wide {
                    u32::MAX as u128 - lo
                } else {
                    [0u128, 0, 15, 255, 4095][(next() % 5) as usize]
                };
                (lo, lo + w)
            };
            let src = side(next().is_multiple_of(6), next);
            let dst = side(next().is_multiple_of(4), next);
            let p = (next() % 1000) as u16;
            let dport = if next().is_multiple_of(3) {
                (0, u16::MAX)
            } else {
                (p, p + (next() % 20) as u16)
            };
            let pr = [6u8, 17, 0][(next() % 3) as usize];
            let proto = if pr == 0 { (0, u8::MAX) } else { (pr, pr) };
            Hull {
                src,
                dst,
                dport,
                proto,
            }
        };
        let items: Vec<(Fam, Hull, u32)> = (0..2000u32)
            .map(|id| {
                let fam = if id % 10 == 0 { Fam::V6 } else { Fam::V4 };
                (fam, hull(&mut next), id)
            })
            .collect();
        let idx = BoxIndex::build(items.clone());
        for k in 0..300 {
            let fam = if k % 10 == 0 { Fam::V6 } else { Fam::V4 };
            let q = hull(&mut next);
            let mut want: Vec<u32> = items
                .iter()
                .filter(|(f, h, _)| *f == fam && h.meets(&q))
                .map(|i| i.2)
                .collect();
            let mut got = Vec::new();
            idx.query_into(fam, &q, &mut got);
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "query {k}: {q:?}");
            // Bounded by id: exactly the items below the bound, wherever
            // the bound falls in the tree's subtrees.
            let below = (next() % 2100) as u32;
            let mut got = Vec::new();
            idx.query_below(fam, &q, below, &mut got);
            got.sort_unstable();
            want.retain(|&id| id < below);
            assert_eq!(got, want, "query {k} below {below}: {q:?}");
        }
    }

    #[test]
    fn blocked_trees_hand_out_each_block_what_a_scan_finds_there() {
        // Ids spread over several geometric blocks (sparse, as a plan's
        // wide boxes are), queries of every width.
        let mut x: u64 = 7;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut hull = || {
            let lo = (next() % 50_000) as u128;
            let w = [0u128, 255, u32::MAX as u128][(next() % 3) as usize];
            let p = (next() % 100) as u16;
            Hull {
                src: (0, u32::MAX as u128),
                dst: (lo, (lo + w).min(u32::MAX as u128)),
                dport: (p, p + (next() % 10) as u16),
                proto: (6, 6),
            }
        };
        let items: Vec<(Fam, Hull, u32)> = (0..3000u32)
            .map(|i| (Fam::V4, hull(), i * 7 + i % 5))
            .collect();
        let idx = Blocked::build(items.clone());
        for k in 0..20 {
            assert_eq!(Blocked::block_of(Blocked::block_end(k) as u32 - 1), k);
            assert_eq!(Blocked::block_of(Blocked::block_end(k) as u32), k + 1);
        }
        for n in 0..200 {
            let q = hull();
            let mut want: Vec<u32> = items
                .iter()
                .filter(|(_, h, _)| h.meets(&q))
                .map(|i| i.2)
                .collect();
            want.sort_unstable();
            let mut all = Vec::new();
            for k in 0..6 {
                let mut got = Vec::new();
                idx.query_block(k, Fam::V4, &q, u32::MAX, &mut got);
                assert!(
                    got.iter().all(|&id| Blocked::block_of(id) == k),
                    "query {n}: block {k} gave an id of another block"
                );
                all.extend(got);
            }
            all.sort_unstable();
            assert_eq!(all, want, "query {n}: {q:?}");
            let below = (n * 113) as u32;
            let mut got = Vec::new();
            idx.query_below(Fam::V4, &q, below, &mut got);
            got.sort_unstable();
            want.retain(|&id| id < below);
            assert_eq!(got, want, "query {n} below {below}");
        }
    }

    #[test]
    fn bounded_destination_query_keeps_only_ids_below_the_bound() {
        let items = vec![
            (Fam::V4, 10, 10, 0),
            (Fam::V4, 0, u32::MAX as u128, 7),
            (Fam::V4, 5, 300, 2),
            (Fam::V4, 11, 20, 4),
        ];
        let idx = DstIndex::build(items);
        let mut got = Vec::new();
        idx.query_below(Fam::V4, 10, 12, 4, &mut got);
        got.sort_unstable();
        assert_eq!(got, vec![0, 2]);
        got.clear();
        idx.query_below(Fam::V4, 10, 12, 0, &mut got);
        assert!(got.is_empty());
    }
}
