//! Sets of integers as sorted, disjoint, non-adjacent inclusive ranges.
//!
//! Used for every numeric header field: addresses (u32, u128), ports (u16)
//! and protocol numbers (u8). The representation is canonical, so two sets
//! are equal exactly when their range lists are equal.
//!
//! A set with one range (almost every field of almost every rule: one
//! address prefix, one port, one protocol, or "any") is stored inline, so
//! model rules and the analysis engine's boxes need no heap allocation for
//! them; only sets of two or more ranges spill to the heap. On the 100k-rule
//! benchmark this removes most of the parser's and engine's allocations
//! (see docs/engine.md).

use serde::ser::{Serialize, SerializeSeq, Serializer};
use smallvec::SmallVec;

/// An integer type usable as an interval bound.
pub trait Bound: Copy + Ord + std::fmt::Debug + std::hash::Hash {
    /// The smallest value.
    const MIN: Self;
    /// The largest value.
    const MAX: Self;
    /// `self + 1`, or `None` at MAX.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, or `None` at MIN.
    fn pred(self) -> Option<Self>;
}

macro_rules! impl_bound {
    ($($t:ty),*) => {$(
        impl Bound for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
impl_bound!(u8, u16, u32, u64, u128);

/// Range storage: one range inline, more on the heap.
type Ranges<T> = SmallVec<[(T, T); 1]>;

/// Whether two sorted lists of disjoint `[lo, hi]` ranges share a value,
/// by a linear merge (what [`IntervalSet::meets`] does on its ranges).
pub fn ranges_meet<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let ((a0, a1), (b0, b1)) = (a[i], b[j]);
        if a0.max(b0) <= a1.min(b1) {
            return true;
        }
        if a1 < b1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

/// A canonical set of integers: sorted, disjoint, non-adjacent `[lo, hi]` ranges.
///
/// Serializes as the list of `[lo, hi]` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntervalSet<T: Bound> {
    ranges: Ranges<T>,
}

impl<T: Bound + Serialize> Serialize for IntervalSet<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ranges.len()))?;
        for r in &self.ranges {
            seq.serialize_element(r)?;
        }
        seq.end()
    }
}

impl<T: Bound> Default for IntervalSet<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Bound> IntervalSet<T> {
    /// The empty set.
    pub fn empty() -> Self {
        Self {
            ranges: SmallVec::new(),
        }
    }

    /// Every value of the type.
    pub fn full() -> Self {
        Self::range(T::MIN, T::MAX)
    }

    /// One value.
    pub fn single(v: T) -> Self {
        Self::range(v, v)
    }

    /// `[lo, hi]`; empty when `lo > hi`.
    pub fn range(lo: T, hi: T) -> Self {
        let mut ranges = SmallVec::new();
        if lo <= hi {
            ranges.push((lo, hi));
        }
        Self { ranges }
    }

    /// Build from arbitrary (possibly overlapping, unsorted) ranges.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut v: Ranges<T> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Ranges<T> = SmallVec::with_capacity(v.len());
        for (lo, hi) in v {
            if let Some(last) = out.last_mut() {
                // Merge when overlapping or adjacent.
                if last.1.succ().is_none_or(|n| lo <= n) {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
            out.push((lo, hi));
        }
        Self { ranges: out }
    }

    /// Build from ranges that are already canonical: each `lo <= hi`,
    /// sorted, disjoint and non-adjacent (every range starts at least two
    /// past the previous one's end). One pass with the capacity reserved
    /// once from the iterator's size hint: no filter, no sort, no merge.
    /// For callers that derive the ranges from canonical sets (a slice of
    /// one, clipped or with one hole cut out); anything else must use
    /// [`IntervalSet::from_ranges`]. Debug builds check the precondition.
    pub fn from_sorted_ranges(ranges: impl IntoIterator<Item = (T, T)>) -> Self {
        let ranges: Ranges<T> = ranges.into_iter().collect();
        debug_assert!(
            ranges.iter().all(|(lo, hi)| lo <= hi)
                && ranges
                    .windows(2)
                    .all(|w| w[0].1.succ().is_some_and(|n| n < w[1].0)),
            "from_sorted_ranges: ranges not canonical: {ranges:?}"
        );
        Self { ranges }
    }

    /// Replace the ranges at indexes `[i, j)` with `with`, in place: no
    /// new allocation when `with` is no longer than the window, one shift
    /// of the ranges after it otherwise. For cutting one value range out
    /// of a set of many (what is left of the window's first and last
    /// range). The caller keeps the set canonical, as for
    /// [`IntervalSet::from_sorted_ranges`]; debug builds check it.
    ///
    /// # Panics
    /// When `i > j` or `j` is past the last range.
    pub fn replace_window(&mut self, i: usize, j: usize, with: &[(T, T)]) {
        let (w, k) = (j - i, with.len());
        if k <= w {
            self.ranges[i..i + k].copy_from_slice(with);
            self.ranges.drain(i + k..j);
        } else {
            self.ranges[i..j].copy_from_slice(&with[..w]);
            self.ranges.insert_many(j, with[w..].iter().copied());
        }
        debug_assert!(
            self.ranges.iter().all(|(lo, hi)| lo <= hi)
                && self
                    .ranges
                    .windows(2)
                    .all(|w| w[0].1.succ().is_some_and(|n| n < w[1].0)),
            "replace_window: ranges not canonical: {:?}",
            self.ranges
        );
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// Whether the set has no element.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the set holds every value.
    pub fn is_full(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (T::MIN, T::MAX)
    }

    /// Membership, by binary search.
    #[inline]
    pub fn contains(&self, v: T) -> bool {
        if let [(lo, hi)] = self.ranges.as_slice() {
            return *lo <= v && v <= *hi;
        }
        match self.ranges.binary_search_by(|(lo, _)| lo.cmp(&v)) {
            Ok(_) => true,
            Err(0) => false,
            Err(i) => self.ranges[i - 1].1 >= v,
        }
    }

    /// The smallest element.
    pub fn first(&self) -> Option<T> {
        self.ranges.first().map(|r| r.0)
    }

    /// Union.
    pub fn union(&self, other: &Self) -> Self {
        if other.ranges.is_empty() {
            return self.clone();
        }
        if self.ranges.is_empty() {
            return other.clone();
        }
        Self::from_ranges(self.ranges.iter().chain(other.ranges.iter()).copied())
    }

    /// Whether the two sets share a value, by a linear merge that stops at
    /// the first common range (no set is built).
    pub fn meets(&self, other: &Self) -> bool {
        ranges_meet(&self.ranges, &other.ranges)
    }

    /// Intersection, by a linear merge.
    pub fn intersect(&self, other: &Self) -> Self {
        if let ([a], [b]) = (self.ranges.as_slice(), other.ranges.as_slice()) {
            return Self::range(a.0.max(b.0), a.1.min(b.1));
        }
        let (mut i, mut j) = (0, 0);
        let mut out = SmallVec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a0, a1) = self.ranges[i];
            let (b0, b1) = other.ranges[j];
            let lo = a0.max(b0);
            let hi = a1.min(b1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { ranges: out }
    }

    /// Complement within the type's whole range.
    pub fn complement(&self) -> Self {
        let mut out = SmallVec::new();
        let mut next = Some(T::MIN);
        for &(lo, hi) in &self.ranges {
            if let Some(n) = next {
                if n < lo {
                    out.push((n, lo.pred().expect("lo > n >= MIN")));
                }
            }
            next = hi.succ();
        }
        if let Some(n) = next {
            out.push((n, T::MAX));
        }
        Self { ranges: out }
    }

    /// `self \ other`.
    pub fn difference(&self, other: &Self) -> Self {
        if other.ranges.is_empty() {
            return self.clone();
        }
        self.intersect(&other.complement())
    }

    /// Whether every element of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        if let ([a], [b]) = (self.ranges.as_slice(), other.ranges.as_slice()) {
            return b.0 <= a.0 && a.1 <= b.1;
        }
        self.difference(other).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(set: &IntervalSet<u8>) -> Vec<bool> {
        (0..=255u8).map(|v| set.contains(v)).collect()
    }

    fn arb_set() -> impl Strategy<Value = IntervalSet<u8>> {
        proptest::collection::vec((any::<u8>(), any::<u8>()), 0..6)
            .prop_map(IntervalSet::from_ranges)
    }

    proptest! {
        #[test]
        fn operations_agree_with_pointwise_sets(a in arb_set(), b in arb_set()) {
            let (na, nb) = (naive(&a), naive(&b));
            let u = naive(&a.union(&b));
            let i = naive(&a.intersect(&b));
            let c = naive(&a.complement());
            let d = naive(&a.difference(&b));
            for v in 0..256 {
                prop_assert_eq!(u[v], na[v] || nb[v]);
                prop_assert_eq!(i[v], na[v] && nb[v]);
                prop_assert_eq!(c[v], !na[v]);
                prop_assert_eq!(d[v], na[v] && !nb[v]);
            }
            prop_assert_eq!(a.meets(&b), (0..256).any(|v| na[v] && nb[v]));
        }

        #[test]
        fn representation_is_canonical(a in arb_set(), b in arb_set()) {
            // Equal as sets implies equal as values.
            if naive(&a) == naive(&b) {
                prop_assert_eq!(&a, &b);
            }
            for w in a.ranges().windows(2) {
                prop_assert!(w[0].1 as u16 + 1 < w[1].0 as u16, "ranges must be disjoint and non-adjacent");
            }
        }

        #[test]
        fn complement_is_an_involution(a in arb_set()) {
            prop_assert_eq!(a.complement().complement(), a);
        }

        #[test]
        fn from_sorted_ranges_on_canonical_ranges_equals_from_ranges(
            a in arb_set(),
            lo in any::<u8>(),
            hi in any::<u8>(),
        ) {
            // A canonical list, and the two shapes the analysis derives
            // from one: clipped to `[lo, hi]`, and with `[lo, hi]` cut out.
            let clipped: Vec<_> = a
                .ranges()
                .iter()
                .map(|&(x, y)| (x.max(lo), y.min(hi)))
                .filter(|(x, y)| x <= y)
                .collect();
            let holed = a.difference(&IntervalSet::range(lo, hi));
            for list in [a.ranges().to_vec(), clipped, holed.ranges().to_vec()] {
                prop_assert_eq!(
                    IntervalSet::from_sorted_ranges(list.iter().copied()),
                    IntervalSet::from_ranges(list)
                );
            }
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not canonical")]
    fn from_sorted_ranges_rejects_adjacent_ranges_in_debug_builds() {
        // [1, 2] and [3, 4] are adjacent: the canonical form is [1, 4].
        let _ = IntervalSet::<u8>::from_sorted_ranges([(1, 2), (3, 4)]);
    }

    #[test]
    fn serializes_as_a_list_of_inclusive_pairs_whatever_the_storage() {
        // One range is stored inline, two on the heap: the JSON is the same shape.
        let one = IntervalSet::<u16>::single(443);
        let two = IntervalSet::<u16>::from_ranges([(8080, 8081), (22, 22)]);
        assert_eq!(serde_json::to_string(&one).unwrap(), "[[443,443]]");
        assert_eq!(
            serde_json::to_string(&two).unwrap(),
            "[[22,22],[8080,8081]]"
        );
        assert_eq!(
            serde_json::to_string(&IntervalSet::<u8>::empty()).unwrap(),
            "[]"
        );
    }

    #[test]
    fn full_and_empty_are_complements_at_type_bounds() {
        assert!(IntervalSet::<u128>::full().complement().is_empty());
        assert!(IntervalSet::<u128>::empty().complement().is_full());
        let top = IntervalSet::<u16>::range(65000, u16::MAX);
        assert_eq!(top.complement(), IntervalSet::range(0, 64999));
    }
}
