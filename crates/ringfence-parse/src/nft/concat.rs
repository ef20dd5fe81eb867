//! Boxes in the space of a concatenation's tuple (`ip saddr . tcp dport`).
//!
//! A set matched by a concatenation holds tuples; one element (with prefixes
//! and ranges in its parts) is a box: one value set per part. The set is the
//! union of its elements' boxes. A model rule matches one box in header
//! space, so the parser lowers such a match to one model rule per box. This
//! module holds the algebra that lowering needs:
//!
//! - [`merge`]: fewer boxes for the same union (elements that differ in one
//!   part only become one box);
//! - [`disjoint`]: the same union as pairwise disjoint boxes, which a `jump`
//!   needs (a copy of the rule per box must not run the sub-chain twice);
//! - [`complement`]: the tuples *not* in the union, as disjoint boxes, for `!=`.
//!
//! Every operation has a budget on the number of boxes it builds; over it,
//! the operation gives up ([`Fail::Budget`]) and the caller keeps the match
//! opaque. A difference of interface sets that is not again one interface set
//! (a prefix with a hole in it) also gives up ([`Fail::Iface`]).

use ringfence_model::{IfaceSet, IntervalSet};
use std::collections::HashMap;

/// The values one part of a tuple may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// Numbers: addresses, ports, protocol numbers (each kind within its own width).
    Num(IntervalSet<u128>),
    /// Interface names.
    Iface(IfaceSet),
}

/// One value set per part of the concatenation.
pub(crate) type TBox = Vec<Part>;

/// Why an operation gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// More boxes than the budget.
    Budget,
    /// An interface-set difference that is not one interface set.
    Iface,
}

impl Part {
    fn is_empty(&self) -> bool {
        match self {
            Part::Num(s) => s.is_empty(),
            Part::Iface(s) => s.is_empty(),
        }
    }

    fn intersect(&self, other: &Part) -> Result<Part, Fail> {
        match (self, other) {
            (Part::Num(a), Part::Num(b)) => Ok(Part::Num(a.intersect(b))),
            (Part::Iface(a), Part::Iface(b)) => super::intersect_ifaces(a, b)
                .map(Part::Iface)
                .ok_or(Fail::Iface),
            _ => unreachable!("parts of one position always have one kind"),
        }
    }

    fn difference(&self, other: &Part) -> Result<Part, Fail> {
        match (self, other) {
            (Part::Num(a), Part::Num(b)) => Ok(Part::Num(a.difference(b))),
            (Part::Iface(a), Part::Iface(b)) => {
                let not_b = IfaceSet {
                    patterns: b.patterns.clone(),
                    negated: !b.negated,
                };
                super::intersect_ifaces(a, &not_b)
                    .map(Part::Iface)
                    .ok_or(Fail::Iface)
            }
            _ => unreachable!("parts of one position always have one kind"),
        }
    }

    /// Whether the two parts share a value; for numbers without allocating.
    fn overlaps(&self, other: &Part) -> Result<bool, Fail> {
        match (self, other) {
            (Part::Num(a), Part::Num(b)) => {
                let (a, b) = (a.ranges(), b.ranges());
                let (mut i, mut j) = (0, 0);
                while i < a.len() && j < b.len() {
                    if a[i].0.max(b[j].0) <= a[i].1.min(b[j].1) {
                        return Ok(true);
                    }
                    if a[i].1 < b[j].1 {
                        i += 1;
                    } else {
                        j += 1;
                    }
                }
                Ok(false)
            }
            _ => Ok(!self.intersect(other)?.is_empty()),
        }
    }

    /// The union when it is again one part (interface sets: both positive).
    fn union(&self, other: &Part) -> Option<Part> {
        match (self, other) {
            (Part::Num(a), Part::Num(b)) => Some(Part::Num(a.union(b))),
            (Part::Iface(a), Part::Iface(b)) if !a.negated && !b.negated => {
                let mut p = a.patterns.clone();
                for x in &b.patterns {
                    if !p.contains(x) {
                        p.push(x.clone());
                    }
                }
                Some(Part::Iface(IfaceSet::only(p)))
            }
            _ => None,
        }
    }
}

fn overlaps(a: &TBox, b: &TBox) -> Result<bool, Fail> {
    for (x, y) in a.iter().zip(b) {
        if !x.overlaps(y)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `a \ b` as disjoint boxes (at most one per part).
fn difference(a: &TBox, b: &TBox, out: &mut Vec<TBox>) -> Result<(), Fail> {
    if !overlaps(a, b)? {
        out.push(a.clone());
        return Ok(());
    }
    // Piece i: inside b on parts before i, outside b on part i, anything of a after.
    let mut prefix: TBox = a.clone();
    for i in 0..a.len() {
        let outside = a[i].difference(&b[i])?;
        if !outside.is_empty() {
            let mut piece = prefix.clone();
            piece[i] = outside;
            out.push(piece);
        }
        prefix[i] = a[i].intersect(&b[i])?;
    }
    Ok(())
}

/// The same union with fewer boxes: boxes equal in every part but one are
/// joined, one part at a time. Order-free, so it suits every use here.
pub(crate) fn merge(boxes: Vec<TBox>) -> Vec<TBox> {
    let Some(width) = boxes.first().map(Vec::len) else {
        return boxes;
    };
    let mut boxes: Vec<TBox> = boxes
        .into_iter()
        .filter(|b| !b.iter().any(Part::is_empty))
        .collect();
    for d in (0..width).rev() {
        if boxes.len() < 2 {
            break;
        }
        let mut slot: HashMap<Vec<&Part>, usize> = HashMap::new();
        let mut joined: Vec<Option<Part>> = Vec::with_capacity(boxes.len());
        let mut target: Vec<usize> = Vec::with_capacity(boxes.len());
        for (i, b) in boxes.iter().enumerate() {
            let key: Vec<&Part> = b
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != d)
                .map(|(_, p)| p)
                .collect();
            match slot.get(&key) {
                Some(&s) => {
                    let u = joined[s].as_ref().and_then(|cur| cur.union(&b[d]));
                    match u {
                        Some(u) => {
                            joined[s] = Some(u);
                            target.push(s);
                            joined.push(None);
                        }
                        None => {
                            target.push(i);
                            joined.push(Some(b[d].clone()));
                        }
                    }
                }
                None => {
                    slot.insert(key, i);
                    target.push(i);
                    joined.push(Some(b[d].clone()));
                }
            }
        }
        let mut out = Vec::with_capacity(boxes.len());
        for (i, b) in boxes.iter().enumerate() {
            if target[i] == i {
                let mut nb = b.clone();
                nb[d] = joined[i].take().expect("a kept box has its part");
                out.push(nb);
            }
        }
        boxes = out;
    }
    boxes
}

/// Positions along part `d` where each box's ranges start and end (end as
/// the position after the range), sorted; `None` for interface parts.
fn events(boxes: &[&TBox], d: usize) -> Option<Vec<(u128, bool, usize)>> {
    let mut ev = Vec::with_capacity(boxes.len() * 2);
    for (i, b) in boxes.iter().enumerate() {
        let Part::Num(s) = &b[d] else {
            return None;
        };
        for &(lo, hi) in s.ranges() {
            ev.push((lo, true, i));
            if let Some(end) = hi.checked_add(1) {
                ev.push((end, false, i));
            }
        }
    }
    // Ends before starts at one position: a range ending at p-1 and one
    // starting at p do not overlap.
    ev.sort_by_key(|&(p, start, i)| (p, start, i));
    Some(ev)
}

/// Whether the boxes are pairwise disjoint: a sweep along the first part
/// finds the pairs that overlap there, then only those are compared whole.
fn pairwise_disjoint(boxes: &[TBox]) -> Result<bool, Fail> {
    if boxes.len() < 2 {
        return Ok(true);
    }
    let refs: Vec<&TBox> = boxes.iter().collect();
    let Some(ev) = events(&refs, 0) else {
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[..i] {
                if overlaps(a, b)? {
                    return Ok(false);
                }
            }
        }
        return Ok(true);
    };
    let mut active: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    for (_, start, i) in ev {
        if start {
            for &j in &active {
                if overlaps(&boxes[i], &boxes[j])? {
                    return Ok(false);
                }
            }
            active.insert(i);
        } else {
            active.remove(&i);
        }
    }
    Ok(true)
}

/// The union of `boxes` as pairwise disjoint boxes: each box minus every box
/// before it. Gives up past `budget` boxes. (The kernel refuses overlapping
/// elements in a concatenated interval set, so real sets pass unchanged.)
pub(crate) fn disjoint(boxes: &[TBox], budget: usize) -> Result<Vec<TBox>, Fail> {
    if pairwise_disjoint(boxes)? {
        return Ok(boxes.to_vec());
    }
    let mut out: Vec<TBox> = Vec::with_capacity(boxes.len());
    for (i, b) in boxes.iter().enumerate() {
        let mut pieces = vec![b.clone()];
        for earlier in &boxes[..i] {
            if !overlaps(b, earlier)? {
                continue;
            }
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for p in &pieces {
                difference(p, earlier, &mut next)?;
            }
            pieces = next;
            if pieces.is_empty() {
                break;
            }
            if out.len() + pieces.len() > budget {
                return Err(Fail::Budget);
            }
        }
        out.extend(pieces);
        if out.len() > budget {
            return Err(Fail::Budget);
        }
    }
    Ok(out)
}

/// Every tuple of `full` that no box holds, as disjoint boxes. Gives up past
/// `budget` boxes.
pub(crate) fn complement(full: &TBox, boxes: &[TBox], budget: usize) -> Result<Vec<TBox>, Fail> {
    let is_iface = |i: &usize| matches!(full[*i], Part::Iface(_));
    let ifaces: Vec<usize> = (0..full.len()).filter(is_iface).collect();
    if ifaces.len() > 1 {
        return complement_by_difference(full, boxes, budget);
    }
    // Sweep the numeric parts; an interface part goes last, where the
    // complement of the covering elements' names is one (negated) set.
    let order: Vec<usize> = (0..full.len())
        .filter(|i| !is_iface(i))
        .chain(ifaces)
        .collect();
    let perm = |b: &TBox| -> TBox { order.iter().map(|&i| b[i].clone()).collect() };
    let pfull = perm(full);
    let pboxes: Vec<TBox> = boxes.iter().map(perm).collect();
    let refs: Vec<&TBox> = pboxes.iter().collect();
    let mut out = Vec::new();
    sweep_complement(&pfull, &refs, 0, &mut Vec::new(), &mut out, budget)?;
    Ok(out
        .into_iter()
        .map(|b| {
            let mut back = full.clone();
            for (j, part) in b.into_iter().enumerate() {
                back[order[j]] = part;
            }
            back
        })
        .collect())
}

/// Cut numeric part `d` into the segments between the boxes' range
/// boundaries; on each segment the boxes covering it are the same, so the
/// complement there is the segment times the complement of those boxes in
/// the later parts. `prefix` holds the segments chosen for parts before `d`.
/// An interface part may only come last.
fn sweep_complement(
    full: &TBox,
    boxes: &[&TBox],
    d: usize,
    prefix: &mut Vec<Part>,
    out: &mut Vec<TBox>,
    budget: usize,
) -> Result<(), Fail> {
    if boxes.is_empty() {
        let mut b = prefix.clone();
        b.extend(full[d..].iter().cloned());
        out.push(b);
        return if out.len() > budget {
            Err(Fail::Budget)
        } else {
            Ok(())
        };
    }
    if d == full.len() {
        return Ok(()); // covered
    }
    let whole = match &full[d] {
        Part::Num(w) => w,
        Part::Iface(all) => {
            // The last part: every name no covering element names.
            let mut names = Vec::new();
            for b in boxes {
                match &b[d] {
                    Part::Iface(s) if s.is_any() => return Ok(()),
                    Part::Iface(s) if !s.negated => names.extend(s.patterns.iter().cloned()),
                    _ => return Err(Fail::Iface),
                }
            }
            let rest = super::intersect_ifaces(all, &IfaceSet::except(names)).ok_or(Fail::Iface)?;
            if !rest.is_empty() {
                let mut b = prefix.clone();
                b.push(Part::Iface(rest));
                out.push(b);
                if out.len() > budget {
                    return Err(Fail::Budget);
                }
            }
            return Ok(());
        }
    };
    let ev = events(boxes, d).expect("numeric parts only");
    let mut active: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    let mut pos = 0u128;
    let mut k = 0;
    loop {
        // Apply every event at `pos`, then the segment runs to the next event.
        while k < ev.len() && ev[k].0 == pos {
            let (_, start, i) = ev[k];
            if start {
                active.insert(i);
            } else {
                active.remove(&i);
            }
            k += 1;
        }
        let end = match ev.get(k) {
            Some(&(next, _, _)) => next - 1,
            None => u128::MAX,
        };
        let seg = whole.intersect(&IntervalSet::range(pos, end));
        if !seg.is_empty() {
            let covering: Vec<&TBox> = active.iter().map(|&i| boxes[i]).collect();
            prefix.push(Part::Num(seg));
            let r = sweep_complement(full, &covering, d + 1, prefix, out, budget);
            prefix.pop();
            r?;
        }
        match ev.get(k) {
            Some(&(next, _, _)) => pos = next,
            None => break,
        }
    }
    Ok(())
}

/// Any parts: subtract each box from the pieces left so far.
fn complement_by_difference(full: &TBox, boxes: &[TBox], budget: usize) -> Result<Vec<TBox>, Fail> {
    let mut pieces = vec![full.clone()];
    for b in boxes {
        let mut next = Vec::with_capacity(pieces.len() + b.len());
        for p in &pieces {
            difference(p, b, &mut next)?;
        }
        pieces = next;
        if pieces.len() > budget {
            return Err(Fail::Budget);
        }
        if pieces.is_empty() {
            break;
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ringfence_model::IfacePattern;

    // Two numeric parts over 0..16 and one interface part over a few names:
    // small enough to check every tuple.
    const NAMES: [&str; 4] = ["rf-a", "rf-b", "eth0", "x"];

    fn holds(b: &TBox, t: (u128, u128, &str)) -> bool {
        let num = |p: &Part, v: u128| matches!(p, Part::Num(s) if s.contains(v));
        let ifc = |p: &Part, n: &str| matches!(p, Part::Iface(s) if s.matches(Some(n)));
        num(&b[0], t.0) && num(&b[1], t.1) && ifc(&b[2], t.2)
    }

    fn tuples() -> Vec<(u128, u128, &'static str)> {
        let mut v = Vec::new();
        for a in 0..16 {
            for b in 0..16 {
                for n in NAMES {
                    v.push((a, b, n));
                }
            }
        }
        v
    }

    fn arb_num() -> impl Strategy<Value = Part> {
        proptest::collection::vec((0u128..16, 0u128..16), 1..3).prop_map(|r| {
            Part::Num(IntervalSet::from_ranges(
                r.into_iter().map(|(a, b)| (a.min(b), a.max(b))),
            ))
        })
    }

    fn arb_iface() -> impl Strategy<Value = Part> {
        prop_oneof![
            Just(IfaceSet::any()),
            Just(IfaceSet::only(vec![IfacePattern::Exact("rf-a".into())])),
            Just(IfaceSet::only(vec![IfacePattern::Exact("eth0".into())])),
            Just(IfaceSet::only(vec![IfacePattern::Prefix("rf-".into())])),
            Just(IfaceSet::only(vec![
                IfacePattern::Exact("x".into()),
                IfacePattern::Exact("rf-b".into())
            ])),
        ]
        .prop_map(Part::Iface)
    }

    fn arb_box() -> impl Strategy<Value = TBox> {
        (arb_num(), arb_num(), arb_iface()).prop_map(|(a, b, c)| vec![a, b, c])
    }

    fn full() -> TBox {
        vec![
            Part::Num(IntervalSet::range(0, 15)),
            Part::Num(IntervalSet::range(0, 15)),
            Part::Iface(IfaceSet::any()),
        ]
    }

    proptest! {
        #[test]
        fn merge_keeps_the_union(boxes in proptest::collection::vec(arb_box(), 0..8)) {
            let merged = merge(boxes.clone());
            prop_assert!(merged.len() <= boxes.len());
            for t in tuples() {
                prop_assert_eq!(
                    merged.iter().any(|b| holds(b, t)),
                    boxes.iter().any(|b| holds(b, t)),
                    "tuple {:?}", t
                );
            }
        }

        #[test]
        fn disjoint_keeps_the_union_and_each_tuple_is_in_one_box(
            boxes in proptest::collection::vec(arb_box(), 0..8)
        ) {
            match disjoint(&boxes, 10_000) {
                Ok(d) => {
                    for t in tuples() {
                        let n = d.iter().filter(|b| holds(b, t)).count();
                        prop_assert!(n <= 1, "tuple {:?} in {} boxes", t, n);
                        prop_assert_eq!(n == 1, boxes.iter().any(|b| holds(b, t)));
                    }
                }
                // Only a prefix with a hole in it may refuse.
                Err(e) => prop_assert_eq!(e, Fail::Iface),
            }
        }

        #[test]
        fn complement_holds_exactly_the_tuples_no_box_holds(
            boxes in proptest::collection::vec(arb_box(), 0..6)
        ) {
            match complement(&full(), &boxes, 10_000) {
                Ok(c) => {
                    for t in tuples() {
                        let n = c.iter().filter(|b| holds(b, t)).count();
                        prop_assert!(n <= 1, "tuple {:?} in {} boxes", t, n);
                        prop_assert_eq!(n == 1, !boxes.iter().any(|b| holds(b, t)));
                    }
                }
                Err(e) => prop_assert_eq!(e, Fail::Iface),
            }
        }
    }

    fn arb_num_box() -> impl Strategy<Value = TBox> {
        (arb_num(), arb_num()).prop_map(|(a, b)| vec![a, b])
    }

    proptest! {
        #[test]
        fn numeric_complement_by_sweep_holds_exactly_the_uncovered_tuples(
            boxes in proptest::collection::vec(arb_num_box(), 0..8)
        ) {
            let full2 = vec![
                Part::Num(IntervalSet::range(0, 15)),
                Part::Num(IntervalSet::range(0, 15)),
            ];
            let c = complement(&full2, &boxes, 10_000).unwrap();
            let num = |p: &Part, v: u128| matches!(p, Part::Num(s) if s.contains(v));
            let holds2 = |b: &TBox, a: u128, x: u128| num(&b[0], a) && num(&b[1], x);
            for a in 0..16 {
                for x in 0..16 {
                    let n = c.iter().filter(|b| holds2(b, a, x)).count();
                    prop_assert!(n <= 1);
                    prop_assert_eq!(n == 1, !boxes.iter().any(|b| holds2(b, a, x)));
                }
            }
        }
    }

    #[test]
    fn complement_with_a_wildcard_and_a_name_inside_it_is_exact() {
        // `iifname . ip saddr != { "rf-*" . 1, "rf-a" . 2 }`: the name part
        // goes last, where the uncovered names are one negated set.
        let only = |p: IfacePattern| Part::Iface(IfaceSet::only(vec![p]));
        let boxes = vec![
            vec![
                only(IfacePattern::Prefix("rf-".into())),
                Part::Num(IntervalSet::single(1)),
            ],
            vec![
                only(IfacePattern::Exact("rf-a".into())),
                Part::Num(IntervalSet::single(2)),
            ],
        ];
        let full = vec![
            Part::Iface(IfaceSet::any()),
            Part::Num(IntervalSet::range(0, 15)),
        ];
        let c = complement(&full, &boxes, 100).unwrap();
        for name in NAMES {
            for v in 0..16u128 {
                let inside = |b: &TBox| {
                    matches!(&b[0], Part::Iface(s) if s.matches(Some(name)))
                        && matches!(&b[1], Part::Num(s) if s.contains(v))
                };
                let n = c.iter().filter(|b| inside(b)).count();
                assert!(n <= 1);
                assert_eq!(n == 1, !boxes.iter().any(inside), "{name} {v}");
            }
        }
    }

    #[test]
    fn budgets_are_enforced() {
        // A diagonal of 40 points: the complement needs about 80 boxes.
        let diag: Vec<TBox> = (0..40u128)
            .map(|i| {
                vec![
                    Part::Num(IntervalSet::single(i)),
                    Part::Num(IntervalSet::single(i)),
                ]
            })
            .collect();
        let full = vec![
            Part::Num(IntervalSet::range(0, 255)),
            Part::Num(IntervalSet::range(0, 255)),
        ];
        assert_eq!(complement(&full, &diag, 10), Err(Fail::Budget));
        let ok = complement(&full, &diag, 1000).unwrap();
        assert!(ok.len() <= 81, "{} boxes", ok.len());
        // Nested squares overlap pairwise: disjoint pieces need more boxes.
        let nested: Vec<TBox> = (0..40u128)
            .map(|i| {
                vec![
                    Part::Num(IntervalSet::range(0, i)),
                    Part::Num(IntervalSet::range(0, 80 - i)),
                ]
            })
            .collect();
        assert_eq!(disjoint(&nested, 20), Err(Fail::Budget));
        assert!(disjoint(&nested, 1000).is_ok());
    }

    #[test]
    fn elements_differing_in_one_part_merge_into_one_box() {
        let b = |a: u128, p: u128| {
            vec![
                Part::Num(IntervalSet::single(a)),
                Part::Num(IntervalSet::single(p)),
            ]
        };
        let merged = merge(vec![b(1, 22), b(1, 80), b(2, 22), b(2, 80), b(3, 443)]);
        assert_eq!(merged.len(), 2, "{merged:?}");
    }
}
