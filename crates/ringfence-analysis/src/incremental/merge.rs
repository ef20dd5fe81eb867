//! The excess regions before merging, merged group by group as
//! `verify::merge_regions` does (destinations first, then sources) and kept
//! up to date as regions come and go.
//!
//! Regions that differ only in their destinations (same deciding rule and
//! certainty) form a first-level group, merged into one box whose
//! destination is the union; merged boxes that differ only in their
//! sources form a second-level group, merged the same way. Each box is
//! stored once: a group is found by its key (the merged box with the
//! field it unites emptied, and the interned rule key) and refers to its
//! members by index, so a group's key is recomputed from its merged box
//! when it is dropped rather than kept twice. (Keeping every key as a box
//! at each level took about half of the incremental verifier's memory on
//! the 100k-rule benchmark.)

use crate::space::{ISet, PBox};
use std::collections::HashMap;

/// Merge key of a pre-merge excess region: its deciding rule (as a stable
/// reference) and whether it is certain.
pub(super) type RKey = (Option<String>, bool);

/// A merged excess region.
#[derive(Debug, Clone)]
pub(super) struct Merged {
    pub(super) b: PBox,
    pub(super) key: RKey,
}

/// No group.
const NONE: u32 = u32::MAX;

/// Regions that differ only in their destinations.
struct Group0 {
    members: Vec<usize>,
    /// The members as one box (`None` while being filled).
    out: Option<PBox>,
    /// The second-level group the merged box is in.
    up: u32,
    key: u32,
}

/// First-level merged boxes that differ only in their sources.
struct Group1 {
    members: Vec<u32>,
    out: Option<PBox>,
    key: u32,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct Merge {
    /// Pre-merge regions (box, first-level group); freed slots are `None`.
    items: Vec<Option<(PBox, u32)>>,
    free: Vec<usize>,
    keys: Vec<RKey>,
    key_ids: HashMap<RKey, u32>,
    ids0: HashMap<(PBox, u32), u32>,
    g0: Vec<Group0>,
    free0: Vec<u32>,
    ids1: HashMap<(PBox, u32), u32>,
    g1: Vec<Group1>,
    free1: Vec<u32>,
}

/// `b` with the field `set` writes emptied: the key of its group.
fn without(b: &PBox, set: fn(&mut PBox, ISet<u128>)) -> PBox {
    let mut x = b.clone();
    set(&mut x, ISet::empty());
    x
}

/// The boxes of one group as one box: the first box with the field `get`
/// reads (and `set` writes) the union of every member's (the members
/// differ in nothing else); `None` for an empty group.
fn merged<'b>(
    mut members: impl Iterator<Item = &'b PBox>,
    get: fn(&PBox) -> &ISet<u128>,
    set: fn(&mut PBox, ISet<u128>),
) -> Option<PBox> {
    let first = members.next()?;
    let mut ranges: Vec<(u128, u128)> = get(first).ranges().to_vec();
    for b in members {
        ranges.extend_from_slice(get(b).ranges());
    }
    let mut out = first.clone();
    set(&mut out, ISet::from_ranges(ranges));
    Some(out)
}

fn set_dst(b: &mut PBox, v: ISet<u128>) {
    b.dst = v;
}

fn set_src(b: &mut PBox, v: ISet<u128>) {
    b.src = v;
}

/// A free slot of `v` (from `free`) or a new one, holding `x`.
fn alloc<T>(v: &mut Vec<T>, free: &mut Vec<u32>, x: T) -> u32 {
    match free.pop() {
        Some(i) => {
            v[i as usize] = x;
            i
        }
        None => {
            v.push(x);
            (v.len() - 1) as u32
        }
    }
}

impl Merge {
    fn intern(&mut self, k: RKey) -> u32 {
        if let Some(&i) = self.key_ids.get(&k) {
            return i;
        }
        self.keys.push(k.clone());
        let i = (self.keys.len() - 1) as u32;
        self.key_ids.insert(k, i);
        i
    }

    /// Remove the pre-merge regions `removed` (ids an earlier call gave)
    /// and add `added`; returns the merged regions that went away, those
    /// that appeared, and the ids of the added ones, in order.
    pub(super) fn update(
        &mut self,
        removed: &[usize],
        added: Vec<(PBox, RKey)>,
    ) -> (Vec<Merged>, Vec<Merged>, Vec<usize>) {
        let mut touched0: Vec<u32> = Vec::new();
        for &i in removed {
            let (_, g) = self.items[i].take().expect("live item");
            self.free.push(i);
            self.g0[g as usize].members.retain(|&x| x != i);
            touched0.push(g);
        }
        let mut ids = Vec::with_capacity(added.len());
        for (b, k) in added {
            let key = self.intern(k);
            let k0 = (without(&b, set_dst), key);
            let g = match self.ids0.get(&k0) {
                Some(&g) => g,
                None => {
                    let group = Group0 {
                        members: Vec::new(),
                        out: None,
                        up: NONE,
                        key,
                    };
                    let g = alloc(&mut self.g0, &mut self.free0, group);
                    self.ids0.insert(k0, g);
                    g
                }
            };
            let i = match self.free.pop() {
                Some(i) => {
                    self.items[i] = Some((b, g));
                    i
                }
                None => {
                    self.items.push(Some((b, g)));
                    self.items.len() - 1
                }
            };
            self.g0[g as usize].members.push(i);
            touched0.push(g);
            ids.push(i);
        }
        touched0.sort_unstable();
        touched0.dedup();
        let mut touched1: Vec<u32> = Vec::new();
        for g in touched0 {
            let gi = g as usize;
            let new = merged(
                self.g0[gi]
                    .members
                    .iter()
                    .map(|&i| &self.items[i].as_ref().expect("live").0),
                |b| &b.dst,
                set_dst,
            );
            if self.g0[gi].out == new {
                continue;
            }
            let key = self.g0[gi].key;
            if let Some(old) = self.g0[gi].out.take() {
                let up = self.g0[gi].up;
                self.g1[up as usize].members.retain(|&x| x != g);
                touched1.push(up);
                self.g0[gi].up = NONE;
                if new.is_none() {
                    self.ids0.remove(&(without(&old, set_dst), key));
                    self.free0.push(g);
                    continue;
                }
            }
            let n = new.expect("a member");
            let k1 = (without(&n, set_src), key);
            let up = match self.ids1.get(&k1) {
                Some(&h) => h,
                None => {
                    let group = Group1 {
                        members: Vec::new(),
                        out: None,
                        key,
                    };
                    let h = alloc(&mut self.g1, &mut self.free1, group);
                    self.ids1.insert(k1, h);
                    h
                }
            };
            self.g1[up as usize].members.push(g);
            self.g0[gi].up = up;
            self.g0[gi].out = Some(n);
            touched1.push(up);
        }
        touched1.sort_unstable();
        touched1.dedup();
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        for h in touched1 {
            let hi = h as usize;
            let new = merged(
                self.g1[hi]
                    .members
                    .iter()
                    .map(|&g| self.g0[g as usize].out.as_ref().expect("merged")),
                |b| &b.src,
                set_src,
            );
            if self.g1[hi].out == new {
                continue;
            }
            let key = self.keys[self.g1[hi].key as usize].clone();
            if let Some(old) = self.g1[hi].out.take() {
                if new.is_none() {
                    self.ids1.remove(&(without(&old, set_src), self.g1[hi].key));
                    self.free1.push(h);
                }
                gone.push(Merged {
                    b: old,
                    key: key.clone(),
                });
            }
            if let Some(n) = new {
                came.push(Merged { b: n.clone(), key });
                self.g1[hi].out = Some(n);
            }
        }
        (gone, came, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Fam, IfaceUniverse};
    use std::collections::BTreeSet;

    fn region(src: (u128, u128), dst: (u128, u128), port: u16) -> PBox {
        let u = IfaceUniverse::new(std::iter::empty::<&ringfence_model::Ruleset>());
        let mut b = PBox::full(Fam::V4, &u);
        b.src = ISet::from_ranges(vec![src]);
        b.dst = ISet::from_ranges(vec![dst]);
        b.dport = ISet::from_ranges(vec![(port, port)]);
        b
    }

    /// A group being merged: its first box and key, the united ranges.
    type Pending = (PBox, RKey, Vec<(u128, u128)>);

    /// The merged regions of `items`, merged from scratch by a plain
    /// grouping (on the debug text of everything but the united field).
    fn from_scratch(items: &[(PBox, RKey)]) -> BTreeSet<String> {
        let level = |v: Vec<(PBox, RKey)>, dst: bool| -> Vec<(PBox, RKey)> {
            let mut groups: std::collections::BTreeMap<String, Pending> = Default::default();
            for (b, k) in v {
                let mut key = b.clone();
                let side = if dst {
                    std::mem::replace(&mut key.dst, ISet::empty())
                } else {
                    std::mem::replace(&mut key.src, ISet::empty())
                };
                let e = groups
                    .entry(format!("{key:?} {k:?}"))
                    .or_insert_with(|| (b.clone(), k.clone(), Vec::new()));
                e.2.extend_from_slice(side.ranges());
            }
            groups
                .into_values()
                .map(|(mut b, k, ranges)| {
                    let u = ISet::from_ranges(ranges);
                    if dst {
                        b.dst = u;
                    } else {
                        b.src = u;
                    }
                    (b, k)
                })
                .collect()
        };
        level(level(items.to_vec(), true), false)
            .iter()
            .map(|(b, k)| format!("{b:?} {k:?}"))
            .collect()
    }

    #[test]
    fn merged_regions_kept_up_to_date_equal_a_merge_from_scratch() {
        // Regions of two rules over a grid of sources, destinations and
        // ports, so that both merge levels join and split groups.
        let mut all: Vec<(PBox, RKey)> = Vec::new();
        for s in 0..4u128 {
            for d in 0..4u128 {
                for p in [80u16, 443] {
                    let key = (Some(format!("rule{}", (s + d) % 2)), p == 80);
                    all.push((region((s * 10, s * 10 + 9), (d * 4, d * 4 + 1), p), key));
                }
            }
        }
        let mut m = Merge::default();
        let mut live: Vec<(usize, usize)> = Vec::new(); // (merge id, index in all)
        let mut shown: BTreeSet<String> = BTreeSet::new();
        // Add in batches, then remove every third live region, then add
        // some back: after each step the live merged set equals a fresh merge.
        let steps: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![], (0..20).collect()),
            (vec![], (20..all.len()).collect()),
            (vec![0, 3, 6, 9, 12, 15, 18, 21], vec![]),
            (vec![1, 2], vec![0, 3, 6]),
        ];
        for (remove_at, add) in steps {
            let removed: Vec<usize> = remove_at
                .iter()
                .filter_map(|&k| live.get(k).map(|l| l.0))
                .collect();
            live.retain(|l| !removed.contains(&l.0));
            let added: Vec<(PBox, RKey)> = add.iter().map(|&i| all[i].clone()).collect();
            let (gone, came, ids) = m.update(&removed, added);
            live.extend(ids.into_iter().zip(add));
            for g in gone {
                assert!(shown.remove(&format!("{:?} {:?}", g.b, g.key)));
            }
            for c in came {
                assert!(shown.insert(format!("{:?} {:?}", c.b, c.key)));
            }
            let now: Vec<(PBox, RKey)> = live.iter().map(|l| all[l.1].clone()).collect();
            assert_eq!(shown, from_scratch(&now));
        }
    }
}
