//! Finding the boxes a region may meet by their destination hulls, without
//! looking at every box.
//!
//! Each entry is filed under its family, the low end of its destination
//! hull and a width class (the bit length of `hi - lo`). An entry of class
//! `k` is narrower than `2^k`, so one that meets `[qlo, qhi]` starts in
//! `[qlo - (2^k - 1), qhi]`: a query is one range per class in use, and the
//! entries it returns lie within a factor of two of the query's reach.
//! (Filing every narrow entry under one fixed width, as before, returned
//! about 20,000 pivot boxes for a one-address change on the 100k-rule
//! benchmark, whose 11,250 service addresses lie in one /16.)

use crate::space::{Fam, PBox};
use std::collections::BTreeMap;

/// Width classes: 0 (one address) up to 128 (a whole IPv6 space).
const CLASSES: usize = 129;

/// The hull of a box's destination set; `None` when it is empty.
pub(super) fn dst_hull(b: &PBox) -> Option<(u128, u128)> {
    let r = b.dst.ranges();
    Some((r.first()?.0, r.last()?.1))
}

fn fam_key(f: Fam) -> u8 {
    match f {
        Fam::V4 => 4,
        Fam::V6 => 6,
    }
}

fn class(lo: u128, hi: u128) -> usize {
    (128 - (hi - lo).leading_zeros()) as usize
}

/// The largest width of class `k` (`2^k - 1`).
fn reach(k: usize) -> u128 {
    if k == 0 {
        0
    } else {
        u128::MAX >> (128 - k)
    }
}

/// The query boxes' hulls, by family.
fn query_hulls(q: &[PBox]) -> Vec<(u8, u128, u128)> {
    q.iter()
        .filter_map(|b| dst_hull(b).map(|(lo, hi)| (fam_key(b.fam), lo, hi)))
        .collect()
}

/// A changing set of keys `T` (pivot box slots), each with one box's hull.
pub(super) struct HullSet<T: Ord + Copy> {
    classes: Vec<BTreeMap<(u8, u128, T), u128>>,
    used: Vec<usize>,
}

impl<T: Ord + Copy> Default for HullSet<T> {
    fn default() -> Self {
        HullSet {
            classes: (0..CLASSES).map(|_| BTreeMap::new()).collect(),
            used: Vec::new(),
        }
    }
}

impl<T: Ord + Copy> HullSet<T> {
    /// File `key` under `b`'s hull (a box with no destination is never
    /// found, as it meets nothing).
    pub(super) fn insert(&mut self, b: &PBox, key: T) {
        let Some((lo, hi)) = dst_hull(b) else {
            return;
        };
        let k = class(lo, hi);
        if self.classes[k].is_empty() {
            self.used.push(k);
        }
        self.classes[k].insert((fam_key(b.fam), lo, key), hi);
    }

    /// Remove `key`, filed under `b`'s hull.
    pub(super) fn remove(&mut self, b: &PBox, key: T) {
        let Some((lo, hi)) = dst_hull(b) else {
            return;
        };
        let k = class(lo, hi);
        self.classes[k].remove(&(fam_key(b.fam), lo, key));
        if self.classes[k].is_empty() {
            self.used.retain(|&x| x != k);
        }
    }

    /// Keys whose hull meets the hull of some box of `q` (a superset of
    /// those whose box meets it), sorted, each once.
    pub(super) fn meeting(&self, q: &[PBox], lowest: T, highest: T) -> Vec<T> {
        let mut out = Vec::new();
        for (f, qlo, qhi) in query_hulls(q) {
            for &k in &self.used {
                let from = (f, qlo.saturating_sub(reach(k)), lowest);
                let to = (f, qhi, highest);
                for (&(_, _, key), &hi) in self.classes[k].range(from..=to) {
                    if hi >= qlo {
                        out.push(key);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// One entry of a chain's index: family, hull and rule position.
type Entry = (u8, u128, u128, u32);

/// A chain's rules by the hulls of their boxes, kept up to date when rules
/// are inserted or deleted (positions are renumbered, nothing is rebuilt).
#[derive(Default)]
pub(super) struct ChainHulls {
    /// Per width class in use: entries sorted by (family, low end, position).
    classes: Vec<(usize, Vec<Entry>)>,
}

impl ChainHulls {
    /// The index of a chain whose rule `i` has the boxes `boxes[i]`.
    pub(super) fn build<'b>(boxes: impl IntoIterator<Item = &'b [PBox]>) -> Self {
        let mut me = ChainHulls::default();
        for (i, bs) in boxes.into_iter().enumerate() {
            me.add(i as u32, bs);
        }
        for (_, v) in &mut me.classes {
            v.sort_unstable();
        }
        me
    }

    fn add(&mut self, pos: u32, bs: &[PBox]) {
        for b in bs {
            let Some((lo, hi)) = dst_hull(b) else {
                continue;
            };
            let k = class(lo, hi);
            let v = match self.classes.iter().position(|(c, _)| *c == k) {
                Some(at) => &mut self.classes[at].1,
                None => {
                    self.classes.push((k, Vec::new()));
                    &mut self.classes.last_mut().expect("pushed").1
                }
            };
            v.push((fam_key(b.fam), lo, hi, pos));
        }
    }

    /// Rules `at..at + gone` were replaced by rules whose boxes are `new`.
    pub(super) fn splice(&mut self, at: usize, gone: usize, new: &[&[PBox]]) {
        let (at, end) = (at as u32, (at + gone) as u32);
        let shift = new.len() as i64 - gone as i64;
        for (_, v) in &mut self.classes {
            v.retain(|e| e.3 < at || e.3 >= end);
            if shift != 0 {
                for e in v.iter_mut() {
                    if e.3 >= end {
                        e.3 = (e.3 as i64 + shift) as u32;
                    }
                }
            }
        }
        let mut added = ChainHulls::default();
        for (k, bs) in new.iter().enumerate() {
            added.add(at + k as u32, bs);
        }
        for (k, mut v) in added.classes {
            match self.classes.iter().position(|(c, _)| *c == k) {
                Some(p) => {
                    let mine = &mut self.classes[p].1;
                    for e in v.drain(..) {
                        let i = mine.partition_point(|x| *x < e);
                        mine.insert(i, e);
                    }
                }
                None => {
                    v.sort_unstable();
                    self.classes.push((k, v));
                }
            }
        }
        self.classes.retain(|(_, v)| !v.is_empty());
    }

    /// Positions whose hull meets the hull of some box of `q` (a superset
    /// of the rules whose boxes meet it), sorted, each once.
    pub(super) fn meeting(&self, q: &[PBox]) -> Vec<u32> {
        let mut out = Vec::new();
        for (f, qlo, qhi) in query_hulls(q) {
            for (k, v) in &self.classes {
                let from = (f, qlo.saturating_sub(reach(*k)));
                let start = v.partition_point(|e| (e.0, e.1) < from);
                for e in &v[start..] {
                    if (e.0, e.1) > (f, qhi) {
                        break;
                    }
                    if e.2 >= qlo {
                        out.push(e.3);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{ISet, IfaceUniverse};

    fn dst_box(lo: u128, hi: u128) -> PBox {
        let u = IfaceUniverse::new(std::iter::empty::<&ringfence_model::Ruleset>());
        let mut b = PBox::full(Fam::V4, &u);
        b.dst = ISet::from_ranges(vec![(lo, hi)]);
        b
    }

    /// Every key whose hull meets the query, found by looking at all of them.
    fn brute(hulls: &[(u128, u128)], q: (u128, u128)) -> Vec<u32> {
        (0..hulls.len() as u32)
            .filter(|&i| {
                let (lo, hi) = hulls[i as usize];
                lo <= q.1 && q.0 <= hi
            })
            .collect()
    }

    #[test]
    fn hull_queries_return_exactly_the_entries_whose_hulls_meet_the_query() {
        // Hulls of every width class from one address to the whole space,
        // densely packed as service addresses are.
        let mut hulls = Vec::new();
        for i in 0..300u128 {
            let lo = 0x0a60_0000 + i * 7;
            let w = [0, 1, 255, 65_535, 1 << 24, u32::MAX as u128][i as usize % 6];
            hulls.push((lo, (lo + w).min(u32::MAX as u128)));
        }
        let boxes: Vec<Vec<PBox>> = hulls.iter().map(|&(l, h)| vec![dst_box(l, h)]).collect();
        let mut set: HullSet<u32> = HullSet::default();
        for (i, b) in boxes.iter().enumerate() {
            set.insert(&b[0], i as u32);
        }
        let chain = ChainHulls::build(boxes.iter().map(Vec::as_slice));
        for q in [
            (0x0a60_0000, 0x0a60_0000),
            (0x0a60_0100, 0x0a60_01ff),
            (0, u32::MAX as u128),
            (0x0b00_0000, 0x0b00_0000),
            (0, 5),
        ] {
            let want = brute(&hulls, q);
            let qb = [dst_box(q.0, q.1)];
            assert_eq!(set.meeting(&qb, 0, u32::MAX), want, "set, query {q:x?}");
            assert_eq!(chain.meeting(&qb), want, "chain, query {q:x?}");
        }
        // Removing from the set and splicing the chain keep the answers exact.
        for i in (0..300).step_by(3) {
            set.remove(&boxes[i][0], i as u32);
        }
        let kept: Vec<u32> = (0..300).filter(|i| i % 3 != 0).collect();
        let q = [dst_box(0x0a60_0000, 0x0a60_0400)];
        let want: Vec<u32> = brute(&hulls, (0x0a60_0000, 0x0a60_0400))
            .into_iter()
            .filter(|i| kept.contains(i))
            .collect();
        assert_eq!(set.meeting(&q, 0, u32::MAX), want);
    }

    #[test]
    fn a_spliced_chain_index_equals_one_built_from_the_new_rules() {
        let mut hulls: Vec<(u128, u128)> = (0..50u128)
            .map(|i| (0x0a00_0000 + i * 300, 0x0a00_0000 + i * 300 + (i % 4) * 200))
            .collect();
        let to_boxes = |h: &[(u128, u128)]| -> Vec<Vec<PBox>> {
            h.iter().map(|&(l, hi)| vec![dst_box(l, hi)]).collect()
        };
        let mut chain = ChainHulls::build(to_boxes(&hulls).iter().map(Vec::as_slice));
        // Delete 10..13, insert three wide and one narrow rule at 10.
        let new = vec![
            (0, u32::MAX as u128),
            (0x0a00_0100, 0x0a00_0100),
            (0x0a00_0000, 0x0aff_ffff),
            (0x0a00_3000, 0x0a00_3010),
        ];
        hulls.splice(10..13, new.iter().copied());
        let nb = to_boxes(&new);
        let refs: Vec<&[PBox]> = nb.iter().map(Vec::as_slice).collect();
        chain.splice(10, 3, &refs);
        let fresh = ChainHulls::build(to_boxes(&hulls).iter().map(Vec::as_slice));
        for q in [
            (0x0a00_0000, 0x0a00_0000),
            (0x0a00_2ff0, 0x0a00_3100),
            (0, 1),
        ] {
            let qb = [dst_box(q.0, q.1)];
            assert_eq!(chain.meeting(&qb), fresh.meeting(&qb), "query {q:x?}");
            assert_eq!(chain.meeting(&qb), brute(&hulls, q), "query {q:x?}");
        }
    }
}
