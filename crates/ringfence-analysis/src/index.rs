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
                if ehi >= lo {
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
}
