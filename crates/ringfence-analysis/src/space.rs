//! Header space as boxes: one interval set per field.
//!
//! A [`PBox`] is a product of per-field sets for one address family. A region
//! is a list of boxes. Interfaces become finite "atoms" (see [`IfaceUniverse`]),
//! so every field is an interval set and one set of box operations covers all.

use ringfence_model::fields::{self as xf, Extra};
/// The engine's interval sets are the model's (inline single ranges).
pub use ringfence_model::IntervalSet as ISet;
use ringfence_model::{
    Action, AddrTypes, CtStates, IfacePattern, IfaceSet, IntervalSet, MarkField, MarkRewrite,
    MarkTest, Match, Packet, Ruleset,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family of a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fam {
    /// IPv4: addresses are below 2^32.
    V4,
    /// IPv6.
    V6,
}

/// The boxes of one rule's match: one per address family it can match, so
/// almost always one, kept inline.
pub type Boxes = smallvec::SmallVec<[PBox; 1]>;

/// A box in header space for one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PBox {
    /// Address family.
    pub fam: Fam,
    /// Source addresses (IPv4 values fit in the low 32 bits).
    pub src: ISet<u128>,
    /// Destination addresses.
    pub dst: ISet<u128>,
    /// IP protocol.
    pub proto: ISet<u8>,
    /// Source port.
    pub sport: ISet<u16>,
    /// Destination port.
    pub dport: ISet<u16>,
    /// Input interface atoms.
    pub iif: ISet<u16>,
    /// Output interface atoms.
    pub oif: ISet<u16>,
    /// Conntrack state bits.
    pub ct: u8,
    /// Packet mark now, as a bit set over [`MarkSpace::packet`] indices.
    pub mark: u64,
    /// Connection mark now, as a bit set over [`MarkSpace::conn`] indices.
    pub ctmark: u64,
    /// The connection mark the packet entered with (same indices): kept
    /// so that a region can be named by what entered the ruleset after its
    /// marks were rewritten.
    pub ct0: u64,
    /// The rarely tested fields (TCP flags, ICMP type/code, length, DS
    /// field, packet type, source MAC): `None`, the usual case, is every
    /// value of each, so a box of a ruleset that tests none of them costs
    /// one null pointer more.
    pub x: Extra,
    /// The address translations the packet's connection has, as a bit set
    /// over the four [`nat`] states (conntrack's `--ctstate DNAT/SNAT`,
    /// nft `ct status dnat/snat`).
    pub nat: u8,
    /// The connection's original destination and port (conntrack's
    /// original tuple, `--ctorigdst`, `--ctorigdstport`), out of line:
    /// restricted only in boxes whose every packet had its destination
    /// translated ([`nat::DNAT_ANY`]); for the others it is the current
    /// destination and stays every value, `None` (see [`nat`] for the
    /// invariant). Untranslated boxes, nearly all of them, pay one null
    /// pointer for it, as they do for [`PBox::x`].
    pub orig: Orig,
}

/// The original destination of a translated box ([`PBox::orig`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrigDst {
    /// Original destination addresses (`--ctorigdst`).
    pub dst: ISet<u128>,
    /// Original destination ports (`--ctorigdstport`).
    pub dport: ISet<u16>,
}

/// A box's original destination: `None` is every address of its family
/// and every port, the one form of that value (so equal boxes compare
/// equal).
pub type Orig = Option<Box<OrigDst>>;

impl OrigDst {
    /// Every address of `fam` and every port.
    pub fn full(fam: Fam) -> Self {
        Self {
            dst: fam_full(fam),
            dport: ISet::full(),
        }
    }

    /// `None` when both fields hold every value of `fam`.
    pub fn normalize(self, fam: Fam) -> Orig {
        if self.dport.is_full() && self.dst == fam_full(fam) {
            None
        } else {
            Some(Box::new(self))
        }
    }

    /// Whether a field is empty.
    pub fn is_empty(&self) -> bool {
        self.dst.is_empty() || self.dport.is_empty()
    }
}

/// Whether two original destinations share a value (no allocation).
fn orig_overlaps(a: &Orig, b: &Orig) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), None) | (None, Some(a)) => !a.is_empty(),
        (Some(a), Some(b)) => a.dst.meets(&b.dst) && a.dport.meets(&b.dport),
    }
}

/// The address-translation states a connection can be in (bits of
/// [`PBox::nat`]). A first packet enters without translation; a DNAT or
/// REDIRECT in prerouting or output sets `DNAT`, an SNAT or MASQUERADE in
/// postrouting or input sets `SNAT`. A packet of an existing connection may
/// be in any state. The bits are those of the model's `CtNat` (bit
/// `snat | dnat << 1`).
///
/// Invariant: a box restricts its original destination ([`PBox::orig`])
/// only when its `nat` bits are within [`nat::DNAT_ANY`] (every packet's
/// destination was translated); otherwise the original destination is the
/// current one and the field stays every value (`None`). [`PBox::subtract`] splits the
/// `nat` bits before the original destination, which keeps it.
pub mod nat {
    /// No translation.
    pub const NONE: u8 = 1;
    /// Source translated only.
    pub const SNAT: u8 = 2;
    /// Destination translated only.
    pub const DNAT: u8 = 4;
    /// Both translated.
    pub const BOTH: u8 = 8;
    /// Every state.
    pub const ALL: u8 = 15;
    /// The states with a translated destination.
    pub const DNAT_ANY: u8 = DNAT | BOTH;
    /// The states with a translated source.
    pub const SNAT_ANY: u8 = SNAT | BOTH;
    /// The states after a destination translation, from states `s`.
    pub fn add_dnat(s: u8) -> u8 {
        (if s & (NONE | DNAT) != 0 { DNAT } else { 0 })
            | (if s & (SNAT | BOTH) != 0 { BOTH } else { 0 })
    }
    /// The states after a source translation, from states `s`.
    pub fn add_snat(s: u8) -> u8 {
        (if s & (NONE | SNAT) != 0 { SNAT } else { 0 })
            | (if s & (DNAT | BOTH) != 0 { BOTH } else { 0 })
    }
}

fn widen(v4: &IntervalSet<u32>) -> ISet<u128> {
    ISet::from_ranges(v4.ranges().iter().map(|&(a, b)| (a as u128, b as u128)))
}

/// The full address range of a family.
pub fn fam_full(fam: Fam) -> ISet<u128> {
    match fam {
        Fam::V4 => ISet::range(0, u32::MAX as u128),
        Fam::V6 => ISet::full(),
    }
}

impl PBox {
    /// One concrete packet of this box, as a one-point box: field by field
    /// the low end, the high end or a middle value (by `k`, rotated between
    /// fields so that successive `k` mix them), with conntrack state `ct`
    /// (one bit). Marks and the translation state are kept as they are. The
    /// box must not be empty.
    pub fn corner_point(&self, k: usize, ct: u8) -> PBox {
        fn pick<T: ringfence_model::interval::Bound>(s: &ISet<T>, k: usize) -> ISet<T> {
            let r = s.ranges();
            ISet::single(match k % 3 {
                0 => r[0].0,
                1 => r[r.len() - 1].1,
                _ => r[r.len() / 2].0,
            })
        }
        PBox {
            fam: self.fam,
            src: pick(&self.src, k),
            dst: pick(&self.dst, k + 1),
            proto: pick(&self.proto, k + 2),
            sport: pick(&self.sport, k),
            dport: pick(&self.dport, k + 2),
            iif: pick(&self.iif, k + 1),
            oif: pick(&self.oif, k),
            ct,
            mark: self.mark,
            ctmark: self.ctmark,
            ct0: self.ct0,
            x: self.x.as_ref().map(|x| {
                Box::new(ringfence_model::ExtraFields {
                    tcp_flags: pick(&x.tcp_flags, k),
                    icmp: pick(&x.icmp, k + 1),
                    length: pick(&x.length, k + 2),
                    tos: pick(&x.tos, k),
                    pkttype: pick(&x.pkttype, k + 1),
                    mac_src: pick(&x.mac_src, k + 2),
                })
            }),
            nat: self.nat,
            orig: self.orig.clone(),
        }
    }

    /// Every packet of `fam` (all interfaces in `u`, every state).
    pub fn full(fam: Fam, u: &IfaceUniverse) -> Self {
        Self {
            fam,
            src: fam_full(fam),
            dst: fam_full(fam),
            proto: ISet::full(),
            sport: ISet::full(),
            dport: ISet::full(),
            iif: u.full(),
            oif: u.full(),
            ct: CtStates::ALL.0,
            mark: u.marks.all_packet(),
            ctmark: u.marks.all_conn(),
            ct0: u.marks.all_conn(),
            x: None,
            nat: nat::ALL,
            orig: None,
        }
    }

    /// Whether the box's packets entered with the port they now have: a
    /// [translated](PBox::translated) box whose original destination port
    /// is the same set as its port. A DNAT or REDIRECT that keeps the port
    /// leaves its packets so (each packet's original port *is* its port,
    /// not any port of the set), and [`PBox::intersect`] and
    /// [`PBox::subtract`] keep the two equal ([`PBox::relink`]), so that a
    /// later test on the port also narrows the original port the box is
    /// named by. (A translation to one port leaves them equal only when
    /// every packet entered with that port, where linking them changes
    /// nothing.)
    pub fn port_linked(&self) -> bool {
        self.translated()
            && match &self.orig {
                None => self.dport.is_full(),
                Some(o) => o.dport == self.dport,
            }
    }

    /// Narrow the port and the original port of a
    /// [port-linked](PBox::port_linked) box to their common part.
    fn relink(&mut self) {
        let o = self
            .orig
            .take()
            .map_or_else(|| OrigDst::full(self.fam), |b| *b);
        let d = self.dport.intersect(&o.dport);
        self.orig = OrigDst {
            dst: o.dst,
            dport: d.clone(),
        }
        .normalize(self.fam);
        self.dport = d;
    }

    /// Whether every packet of the box had its destination translated by
    /// a rule of the ruleset: a first packet (state NEW) whose connection
    /// is in a DNAT state. Its [`PBox::orig`] then holds the destination
    /// it entered with.
    pub fn translated(&self) -> bool {
        self.ct == CtStates::NEW && self.nat != 0 && self.nat & !nat::DNAT_ANY == 0
    }

    /// The box named as its packets entered the ruleset: for a
    /// [translated](PBox::translated) box, the original destination and
    /// port in place of the current ones (and those fields full again);
    /// any other box as it is.
    pub fn as_entered(mut self) -> PBox {
        if self.translated() {
            let o = self
                .orig
                .take()
                .map_or_else(|| OrigDst::full(self.fam), |o| *o);
            self.dst = o.dst;
            self.dport = o.dport;
            self.nat = nat::NONE;
        }
        self
    }

    /// Whether no packet is in the box.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
            || self.dst.is_empty()
            || self.proto.is_empty()
            || self.sport.is_empty()
            || self.dport.is_empty()
            || self.iif.is_empty()
            || self.oif.is_empty()
            || self.ct == 0
            || self.mark == 0
            || self.ctmark == 0
            || self.ct0 == 0
            || xf::is_empty(&self.x)
            || self.nat == 0
            || self.orig.as_ref().is_some_and(|o| o.is_empty())
    }

    /// Whether the boxes share a packet (no allocation, except for a
    /// [port-linked](PBox::port_linked) box against one that tests the
    /// original port).
    pub fn overlaps(&self, o: &PBox) -> bool {
        self.overlaps_fields(o)
            && !((self.orig.is_some() || o.orig.is_some())
                && (self.port_linked() || o.port_linked())
                && self.intersect_fields(o).is_empty())
    }

    /// [`PBox::overlaps`] field by field.
    fn overlaps_fields(&self, o: &PBox) -> bool {
        self.fam == o.fam
            && self.ct & o.ct != 0
            && self.mark & o.mark != 0
            && self.ctmark & o.ctmark != 0
            && self.ct0 & o.ct0 != 0
            && self.nat & o.nat != 0
            && sets::meets(&self.dst, &o.dst)
            && sets::meets(&self.dport, &o.dport)
            && sets::meets(&self.src, &o.src)
            && sets::meets(&self.proto, &o.proto)
            && sets::meets(&self.sport, &o.sport)
            && sets::meets(&self.iif, &o.iif)
            && sets::meets(&self.oif, &o.oif)
            && xf::overlaps(&self.x, &o.x)
            && orig_overlaps(&self.orig, &o.orig)
    }

    /// Join `o` into `self` when the two boxes are equal but for their
    /// sources or their destinations (their union is then one box); false,
    /// and `self` unchanged, otherwise. Protocols and ports are left apart:
    /// a region's service is what reports group it by.
    pub(crate) fn join_addresses(&mut self, o: &PBox) -> bool {
        let rest_equal = self.fam == o.fam
            && self.ct == o.ct
            && self.mark == o.mark
            && self.ctmark == o.ctmark
            && self.ct0 == o.ct0
            && self.nat == o.nat
            && self.proto == o.proto
            && self.sport == o.sport
            && self.dport == o.dport
            && self.iif == o.iif
            && self.oif == o.oif
            && self.x == o.x
            && self.orig == o.orig;
        if !rest_equal {
            return false;
        }
        match (self.src == o.src, self.dst == o.dst) {
            (true, true) => true,
            (true, false) => {
                self.dst = self.dst.union(&o.dst);
                true
            }
            (false, true) => {
                self.src = self.src.union(&o.src);
                true
            }
            (false, false) => false,
        }
    }

    /// Intersection, or `None` when empty.
    pub fn intersect(&self, o: &PBox) -> Option<PBox> {
        if !self.overlaps_fields(o) {
            return None;
        }
        if self.port_linked() || o.port_linked() {
            let x = self.intersect_fields(o);
            return (!x.is_empty()).then_some(x);
        }
        Some(self.intersect_plain(o))
    }

    /// The intersection field by field (the boxes' fields must overlap),
    /// with the port and original port of a
    /// [port-linked](PBox::port_linked) box kept linked.
    fn intersect_fields(&self, o: &PBox) -> PBox {
        let mut x = self.intersect_plain(o);
        if self.port_linked() || o.port_linked() {
            x.relink();
        }
        x
    }

    /// The intersection of each field on its own.
    fn intersect_plain(&self, o: &PBox) -> PBox {
        PBox {
            fam: self.fam,
            src: self.src.intersect(&o.src),
            dst: self.dst.intersect(&o.dst),
            proto: self.proto.intersect(&o.proto),
            sport: self.sport.intersect(&o.sport),
            dport: self.dport.intersect(&o.dport),
            iif: self.iif.intersect(&o.iif),
            oif: self.oif.intersect(&o.oif),
            ct: self.ct & o.ct,
            mark: self.mark & o.mark,
            ctmark: self.ctmark & o.ctmark,
            ct0: self.ct0 & o.ct0,
            x: xf::intersect(&self.x, &o.x),
            nat: self.nat & o.nat,
            orig: match (&self.orig, &o.orig) {
                (None, None) => None,
                (Some(a), None) | (None, Some(a)) => Some(a.clone()),
                (Some(a), Some(b)) => OrigDst {
                    dst: a.dst.intersect(&b.dst),
                    dport: a.dport.intersect(&b.dport),
                }
                .normalize(self.fam),
            },
        }
    }

    /// Whether every packet of `self` is in `o`.
    pub fn is_subset(&self, o: &PBox) -> bool {
        self.fam == o.fam
            && self.ct & !o.ct == 0
            && self.mark & !o.mark == 0
            && self.ctmark & !o.ctmark == 0
            && self.ct0 & !o.ct0 == 0
            && self.dst.is_subset(&o.dst)
            && self.dport.is_subset(&o.dport)
            && self.src.is_subset(&o.src)
            && self.proto.is_subset(&o.proto)
            && self.sport.is_subset(&o.sport)
            && self.iif.is_subset(&o.iif)
            && self.oif.is_subset(&o.oif)
            && xf::is_subset(&self.x, &o.x)
            && self.nat & !o.nat == 0
            && match (&self.orig, &o.orig) {
                (_, None) => true,
                (None, Some(b)) => b.dport.is_full() && fam_full(self.fam).is_subset(&b.dst),
                (Some(a), Some(b)) => a.dst.is_subset(&b.dst) && a.dport.is_subset(&b.dport),
            }
    }

    /// Whether `self` lies inside `o` and cutting it by `o`
    /// ([`PBox::split`]) would leave it exactly as it is: every field a
    /// subset, and neither box tests the rarer fields or the original
    /// destination, nor is `self` [port-linked](PBox::port_linked) (those
    /// the cut may rewrite). A walk moves such a fragment whole.
    pub(crate) fn within_plain(&self, o: &PBox) -> bool {
        self.x.is_none()
            && o.x.is_none()
            && self.orig.is_none()
            && o.orig.is_none()
            && self.fam == o.fam
            && self.ct & !o.ct == 0
            && self.mark & !o.mark == 0
            && self.ctmark & !o.ctmark == 0
            && self.ct0 & !o.ct0 == 0
            && self.nat & !o.nat == 0
            && !self.port_linked()
            && sets::subset(&self.dst, &o.dst)
            && sets::subset(&self.dport, &o.dport)
            && sets::subset(&self.src, &o.src)
            && sets::subset(&self.proto, &o.proto)
            && sets::subset(&self.sport, &o.sport)
            && sets::subset(&self.iif, &o.iif)
            && sets::subset(&self.oif, &o.oif)
    }

    /// `self \ o` as disjoint boxes (at most one per field).
    pub fn subtract(&self, o: &PBox) -> Vec<PBox> {
        if !self.overlaps(o) {
            return vec![self.clone()];
        }
        self.cut(o).0
    }

    /// `self \ o` as [`PBox::subtract`] gives it, and `self ∩ o` (the same
    /// box as [`PBox::intersect`] gives), in one pass: the part left after
    /// the last split is the intersection. `None` when they do not overlap.
    pub fn split(&self, o: &PBox) -> Option<(Vec<PBox>, PBox)> {
        if !self.overlaps(o) {
            return None;
        }
        Some(self.cut(o))
    }

    /// The pieces of `self` outside `o`, field by field, and what is left
    /// inside; the boxes must overlap. A [port-linked](PBox::port_linked)
    /// `self` is cut as if its port and original port were one field: each
    /// piece has them linked again.
    fn cut(&self, o: &PBox) -> (Vec<PBox>, PBox) {
        self.clone().cut_owned(o)
    }

    /// A box with no packet and nothing allocated: what a slot holds once
    /// its box was taken out to be cut.
    pub(crate) fn vacant() -> PBox {
        PBox {
            fam: Fam::V4,
            src: ISet::empty(),
            dst: ISet::empty(),
            proto: ISet::empty(),
            sport: ISet::empty(),
            dport: ISet::empty(),
            iif: ISet::empty(),
            oif: ISet::empty(),
            ct: 0,
            mark: 0,
            ctmark: 0,
            ct0: 0,
            x: None,
            nat: 0,
            orig: None,
        }
    }

    /// [`PBox::split`] of a box that overlaps `o`, which the caller gives
    /// up: its field sets are reused, so a field of many ranges that a cut
    /// takes one range out of is not copied.
    pub(crate) fn split_owned(self, o: &PBox) -> (Vec<PBox>, PBox) {
        debug_assert!(self.overlaps(o), "split_owned: the boxes do not overlap");
        self.cut_owned(o)
    }

    /// [`PBox::cut`] of an owned box.
    fn cut_owned(self, o: &PBox) -> (Vec<PBox>, PBox) {
        let linked = self.port_linked();
        let (mut out, mut rest) = self.cut_fields(o);
        if linked {
            for p in &mut out {
                p.relink();
            }
            out.retain(|p| !p.is_empty());
            rest.relink();
        }
        (out, rest)
    }

    /// [`PBox::cut`] field by field.
    fn cut_fields(self, o: &PBox) -> (Vec<PBox>, PBox) {
        let mut out = Vec::new();
        let mut rest = self;
        macro_rules! split {
            ($f:ident) => {
                // The field is set aside while the rest is copied, so it
                // (which may hold many ranges after earlier cuts) is not
                // copied only to be replaced; the piece outside reuses it.
                let field = std::mem::take(&mut rest.$f);
                let (outside, inside) = sets::split_off(field, &o.$f);
                if !outside.is_empty() {
                    let mut piece = rest.clone();
                    piece.$f = outside;
                    out.push(piece);
                }
                rest.$f = inside;
            };
        }
        split!(dst);
        split!(dport);
        split!(src);
        split!(proto);
        split!(sport);
        split!(iif);
        split!(oif);
        macro_rules! split_bits {
            ($f:ident) => {
                let outside = rest.$f & !o.$f;
                if outside != 0 {
                    let mut piece = rest.clone();
                    piece.$f = outside;
                    out.push(piece);
                    rest.$f &= o.$f;
                }
            };
        }
        // The translation states before the original destination: a box
        // that restricts the original destination has only translated
        // states, so the rest does too before it is split (see [`nat`]).
        split_bits!(nat);
        // The original destination, then its port, each split as the
        // other fields are (`None` is every value).
        if rest.orig.is_some() || o.orig.is_some() {
            let full = OrigDst::full(rest.fam);
            let od = o.orig.as_deref().unwrap_or(&full);
            let mut r = rest.orig.take().map_or_else(|| full.clone(), |b| *b);
            let outside = r.dst.difference(&od.dst);
            if !outside.is_empty() {
                let mut piece = rest.clone();
                piece.orig = OrigDst {
                    dst: outside,
                    dport: r.dport.clone(),
                }
                .normalize(rest.fam);
                out.push(piece);
                r.dst = r.dst.intersect(&od.dst);
            }
            let outside = r.dport.difference(&od.dport);
            if !outside.is_empty() {
                let mut piece = rest.clone();
                piece.orig = OrigDst {
                    dst: r.dst.clone(),
                    dport: outside,
                }
                .normalize(rest.fam);
                out.push(piece);
                r.dport = r.dport.intersect(&od.dport);
            }
            rest.orig = r.normalize(rest.fam);
        }
        split_bits!(mark);
        split_bits!(ctmark);
        split_bits!(ct0);
        split_bits!(ct);
        if o.x.is_some() {
            let (pieces, inside) = xf::subtract(&rest.x, &o.x);
            for p in pieces {
                let mut piece = rest.clone();
                piece.x = p;
                out.push(piece);
            }
            rest.x = inside;
        }
        (out, rest)
    }

    /// One concrete packet in the box (the lowest value of each field).
    pub fn example(&self, u: &IfaceUniverse) -> Option<Packet> {
        if self.is_empty() {
            return None;
        }
        let addr = |v: u128| match self.fam {
            Fam::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
            Fam::V6 => IpAddr::V6(Ipv6Addr::from(v)),
        };
        // Prefer a host address over the network address when the range allows.
        let pick = |s: &ISet<u128>| {
            let (lo, hi) = s.ranges()[0];
            if hi > lo && lo & 0xff == 0 {
                lo + 1
            } else {
                lo
            }
        };
        let port = |s: &ISet<u16>| {
            // A client-like port when the whole range is open, else the lowest.
            if s.contains(40000) && s.is_full() {
                40000
            } else {
                s.first().unwrap_or(0)
            }
        };
        let proto = if self.proto.contains(6) {
            6
        } else {
            self.proto.first()?
        };
        let ct = [
            CtStates::NEW,
            CtStates::ESTABLISHED,
            CtStates::RELATED,
            CtStates::INVALID,
            CtStates::UNTRACKED,
        ]
        .into_iter()
        .find(|b| self.ct & b != 0)?;
        let x = self.x.as_deref();
        let first = |f: fn(&ringfence_model::ExtraFields) -> Option<u64>| x.and_then(f);
        let icmp = first(|x| x.icmp.first().map(u64::from));
        let mut p = Packet {
            src: addr(pick(&self.src)),
            dst: addr(pick(&self.dst)),
            protocol: proto,
            sport: port(&self.sport),
            dport: self.dport.first()?,
            iif: u.representative(self.iif.first()?),
            oif: u.representative(self.oif.first()?),
            ct_state: ct,
            tcp_flags: first(|x| x.tcp_flags.first().map(u64::from)).map(|v| v as u8),
            icmp_type: icmp.map(|v| (v >> 8) as u8),
            icmp_code: icmp.map(|v| v as u8),
            length: first(|x| x.length.first().map(u64::from)).map(|v| v as u32),
            tos: first(|x| x.tos.first().map(u64::from)).map(|v| v as u8),
            pkttype: first(|x| x.pkttype.first().map(u64::from)).map(|v| v as u8),
            mac_src: first(|x| x.mac_src.first()),
        };
        // Fields the box leaves free take the usual packet's values
        // (a SYN, an echo request, unicast), which the box then holds.
        p.fill_defaults();
        Some(p)
    }
}

/// `a \ (b1 ∪ b2 ∪ ...)`, as disjoint boxes. Stops and returns `None` when more
/// than `budget` pieces would be produced.
pub fn subtract_all(a: &PBox, subs: &[&PBox], budget: usize) -> Option<Vec<PBox>> {
    let mut pieces = vec![a.clone()];
    for s in subs {
        let mut next = Vec::with_capacity(pieces.len());
        for p in pieces {
            if p.overlaps(s) {
                next.extend(p.split_owned(s).0);
            } else {
                next.push(p);
            }
        }
        if next.len() > budget {
            return None;
        }
        pieces = next;
        if pieces.is_empty() {
            break;
        }
    }
    Some(pieces)
}

/// Interface names partitioned into finitely many classes ("atoms") that no
/// pattern in the ruleset can tell apart. Atom 0 is "no interface".
#[derive(Debug, Clone)]
pub struct IfaceUniverse {
    /// The mark values the rulesets can produce (see [`MarkSpace`]).
    pub marks: MarkSpace,
    /// The host's own addresses (`--local`), when known: they decide after
    /// prerouting whether a packet goes to the host (input) or through it
    /// (forward), and what an address-type `LOCAL` test matches.
    pub locals: Option<Locals>,
    /// Whether some rule tests an address type on one interface
    /// ([`Match::iface_types`]): then the interfaces of the host's
    /// addresses become atoms of their own.
    limited: bool,
    reps: Vec<Option<String>>,
    /// For prefix-class atoms: the prefix (the empty string for "other names").
    stems: Vec<Option<String>>,
}

impl IfaceUniverse {
    /// Build from every interface pattern in `rulesets`.
    pub fn new<'a>(rulesets: impl IntoIterator<Item = &'a Ruleset>) -> Self {
        let mut exact = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        let mut rulesets_rewrites = Vec::new();
        let mut limited = false;
        for rs in rulesets {
            for c in &rs.chains {
                for r in &c.rules {
                    if let Action::Mark(rw) = &r.action {
                        rulesets_rewrites.push(*rw);
                    }
                    limited |= r.matches.iface_types.is_some();
                    for set in [&r.matches.iif, &r.matches.oif] {
                        for p in &set.patterns {
                            match p {
                                IfacePattern::Exact(n) => {
                                    exact.insert(n.clone());
                                }
                                IfacePattern::Prefix(n) => {
                                    prefixes.insert(n.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut u = Self::from_patterns(&exact, &prefixes);
        u.marks = MarkSpace::new(rulesets_rewrites);
        u.limited = limited;
        u
    }

    /// The same universe for hosts where something before the ruleset (tc,
    /// eBPF) may already have marked packets: marks are no longer exact
    /// fields, every mark test may or may not match (two branches) and
    /// rewrites are not followed.
    pub fn with_initial_mark_any(mut self) -> Self {
        self.marks = MarkSpace::unknown("--initial-mark any");
        self
    }

    /// The same universe on a host whose own addresses are `addrs`
    /// (loopback is always local and is added here).
    pub fn with_locals(self, addrs: &ringfence_model::AddrSet) -> Self {
        self.with_local_addrs(&ringfence_model::LocalAddrs::from_set(addrs))
    }

    /// The same universe on a host whose own addresses, and the
    /// interfaces of those whose interface is known, are `local`. When
    /// some rule tests an address type on one interface, each such
    /// interface becomes an atom of its own (call this before building
    /// boxes).
    pub fn with_local_addrs(mut self, local: &ringfence_model::LocalAddrs) -> Self {
        let locals = Locals::of_host(local);
        if self.limited {
            for (name, _, _) in &locals.placed {
                if !self
                    .reps
                    .iter()
                    .any(|r| r.as_deref() == Some(name.as_str()))
                {
                    self.reps.push(Some(name.clone()));
                    self.stems.push(None);
                }
            }
        }
        self.locals = Some(locals);
        self
    }

    fn from_patterns(exact: &BTreeSet<String>, prefixes: &BTreeSet<String>) -> Self {
        let mut reps: Vec<Option<String>> = vec![None];
        reps.extend(exact.iter().cloned().map(Some));
        let mut stems: Vec<Option<String>> = vec![None; reps.len()];
        let longest = |name: &str| -> Option<&String> {
            prefixes
                .iter()
                .filter(|p| name.starts_with(p.as_str()))
                .max_by_key(|p| p.len())
        };
        // One name per prefix whose longest matching prefix is that prefix.
        for p in prefixes {
            for k in 0..64 {
                let cand = format!("{p}rf{k}");
                if !exact.contains(&cand) && longest(&cand) == Some(p) {
                    reps.push(Some(cand));
                    stems.push(Some(p.clone()));
                    break;
                }
            }
        }
        // And one name no prefix matches, unless the empty prefix matches all.
        if !prefixes.contains("") {
            for k in 0..64 {
                let cand = format!("rfo{k}");
                if !exact.contains(&cand) && longest(&cand).is_none() {
                    reps.push(Some(cand));
                    stems.push(Some(String::new()));
                    break;
                }
            }
        }
        Self {
            marks: MarkSpace::new(Vec::new()),
            locals: None,
            limited: false,
            reps,
            stems,
        }
    }

    /// Number of atoms.
    pub fn len(&self) -> usize {
        self.reps.len()
    }

    /// Always false: atom 0 ("no interface") exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every atom.
    pub fn full(&self) -> ISet<u16> {
        ISet::range(0, (self.reps.len() - 1) as u16)
    }

    /// Every named interface (not "no interface").
    pub fn named(&self) -> ISet<u16> {
        ISet::range(1, (self.reps.len() - 1) as u16)
    }

    /// Only "no interface".
    pub fn none(&self) -> ISet<u16> {
        ISet::single(0)
    }

    /// An interface name in atom `a` (`None` for atom 0).
    pub fn representative(&self, a: u16) -> Option<String> {
        self.reps.get(a as usize).cloned().flatten()
    }

    /// The atom of an interface name (for points).
    pub fn atom_of(&self, name: Option<&str>) -> u16 {
        let Some(n) = name else { return 0 };
        // The atom whose representative every pattern treats like `n`: exact
        // names first, then the longest-prefix class.
        if let Some(i) = self.reps.iter().position(|r| r.as_deref() == Some(n)) {
            return i as u16;
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, stem) in self.stems.iter().enumerate() {
            let Some(stem) = stem else { continue };
            if n.starts_with(stem.as_str()) && best.is_none_or(|(_, l)| stem.len() > l) {
                best = Some((i, stem.len()));
            }
        }
        best.map(|(i, _)| i as u16).unwrap_or(0)
    }

    /// The atoms matched by an interface set.
    pub fn atoms(&self, set: &IfaceSet) -> ISet<u16> {
        if set.is_any() {
            return self.full();
        }
        ISet::from_ranges(
            (0..self.reps.len())
                .filter(|&i| set.matches(self.reps[i].as_deref()))
                .map(|i| (i as u16, i as u16)),
        )
    }
}

/// The host's own addresses, per family, as engine address sets
/// (loopback included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locals {
    /// IPv4 addresses (below 2^32).
    pub v4: ISet<u128>,
    /// IPv6 addresses.
    pub v6: ISet<u128>,
    /// The addresses on exactly one known interface, by interface:
    /// name, IPv4, IPv6 (loopback on `lo`).
    pub placed: Vec<(String, ISet<u128>, ISet<u128>)>,
    /// The addresses whose interface is not known: IPv4, IPv6.
    pub unplaced: (ISet<u128>, ISet<u128>),
}

impl Locals {
    /// From a model address set, with 127.0.0.0/8 and ::1 added.
    pub fn new(addrs: &ringfence_model::AddrSet) -> Self {
        Self::of_host(&ringfence_model::LocalAddrs::from_set(addrs))
    }

    /// From the host's addresses and their interfaces (loopback included).
    pub fn of_host(local: &ringfence_model::LocalAddrs) -> Self {
        let un = local.unplaced();
        Self {
            v4: widen(&local.addrs.v4),
            v6: local.addrs.v6.clone(),
            placed: local
                .placed()
                .into_iter()
                .map(|(name, set)| (name.to_string(), widen(&set.v4), set.v6))
                .collect(),
            unplaced: (widen(&un.v4), un.v6),
        }
    }

    /// The addresses of family `fam` known to be on interface `name`
    /// alone.
    fn on(&self, fam: Fam, name: &str) -> ISet<u128> {
        self.placed
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v4, v6)| match fam {
                Fam::V4 => v4.clone(),
                Fam::V6 => v6.clone(),
            })
            .unwrap_or_else(ISet::empty)
    }

    /// The loopback addresses alone (127.0.0.0/8, ::1).
    pub fn loopback() -> Self {
        Self::new(&ringfence_model::AddrSet::empty())
    }

    /// The local addresses of a family.
    pub fn of(&self, fam: Fam) -> &ISet<u128> {
        match fam {
            Fam::V4 => &self.v4,
            Fam::V6 => &self.v6,
        }
    }

    /// `b` cut to local destinations, and `b` cut to the others (each
    /// `None` when empty).
    pub fn split_dst(&self, b: &PBox) -> (Option<PBox>, Option<PBox>) {
        let here = self.of(b.fam);
        let inside = b.dst.intersect(here);
        let outside = b.dst.difference(here);
        let with = |d: ISet<u128>| {
            (!d.is_empty()).then(|| {
                let mut x = b.clone();
                x.dst = d;
                x
            })
        };
        (with(inside), with(outside))
    }
}

/// The values the packet mark and the connection mark can take, found once
/// per ruleset: every packet enters with mark 0 and every connection starts
/// with mark 0, so the reachable values are the closure of `{0}` under the
/// ruleset's rewrites (applied in any order, which over-approximates the
/// order they really run in and so contains every value that can occur).
/// Boxes hold each mark as a 64-bit set over the indices of these values,
/// so a value/mask test is one precomputed bit set and intersecting is an
/// AND. A ruleset whose closure has more than [`MarkSpace::MAX`] values
/// (or `--initial-mark any`) is not exact: then marks are not fields, every
/// mark test may or may not match and rewrites are not followed.
#[derive(Debug, Clone)]
pub struct MarkSpace {
    /// Packet mark values, ascending (0 first).
    pub packet: Vec<u32>,
    /// Connection mark values, ascending (0 first).
    pub conn: Vec<u32>,
    /// `None` when marks are exact fields; else why they are not.
    pub inexact: Option<String>,
}

impl MarkSpace {
    /// Most values per mark that stay exact fields (one bit each).
    pub const MAX: usize = 64;

    /// The closure of `(0, 0)` under `rewrites`.
    pub fn new(rewrites: Vec<MarkRewrite>) -> Self {
        let mut rws = rewrites;
        rws.sort_by_key(|r| (r.field == MarkField::Conn, r.clear, r.xor, r.copy));
        rws.dedup();
        let mut packet: BTreeSet<u32> = BTreeSet::from([0]);
        let mut conn: BTreeSet<u32> = BTreeSet::from([0]);
        loop {
            let mut grew = false;
            let pairs: Vec<(u32, u32)> = packet
                .iter()
                .flat_map(|&m| conn.iter().map(move |&c| (m, c)))
                .collect();
            for rw in &rws {
                for &(m, c) in &pairs {
                    let (m2, c2) = rw.apply(m, c);
                    grew |= packet.insert(m2);
                    grew |= conn.insert(c2);
                }
                if packet.len() > Self::MAX || conn.len() > Self::MAX {
                    return Self::unknown(&format!(
                        "the ruleset's mark rewrites reach more than {} mark values",
                        Self::MAX
                    ));
                }
            }
            if !grew {
                break;
            }
        }
        Self {
            packet: packet.into_iter().collect(),
            conn: conn.into_iter().collect(),
            inexact: None,
        }
    }

    /// Marks that are not fields (see [`MarkSpace`]), for the reason given.
    pub fn unknown(why: &str) -> Self {
        Self {
            packet: vec![0],
            conn: vec![0],
            inexact: Some(why.to_string()),
        }
    }

    /// Whether marks are exact fields.
    pub fn exact(&self) -> bool {
        self.inexact.is_none()
    }

    fn bits(n: usize) -> u64 {
        if n >= 64 {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    }

    /// Every packet mark value.
    pub fn all_packet(&self) -> u64 {
        Self::bits(self.packet.len())
    }

    /// Every connection mark value.
    pub fn all_conn(&self) -> u64 {
        Self::bits(self.conn.len())
    }

    /// The connection marks a packet in conntrack states `ct` can enter
    /// with: 0 for a new connection, any reachable value for a later packet.
    pub fn entry_conn(&self, ct: u8) -> u64 {
        if ct & !CtStates::NEW == 0 {
            1
        } else {
            self.all_conn()
        }
    }

    fn index(values: &[u32], v: u32) -> u32 {
        values
            .binary_search(&v)
            .expect("mark closure holds every rewritten value") as u32
    }

    /// The packet and connection mark sets passing every test (both full
    /// when marks are not exact: the tests are then opaque).
    pub fn tests(&self, tests: &[MarkTest]) -> (u64, u64) {
        let (mut p, mut c) = (self.all_packet(), self.all_conn());
        if !self.exact() {
            return (p, c);
        }
        for t in tests {
            match t.field {
                MarkField::Packet => {
                    for (i, &v) in self.packet.iter().enumerate() {
                        if !t.holds(v, 0) {
                            p &= !(1u64 << i);
                        }
                    }
                }
                MarkField::Conn => {
                    for (i, &v) in self.conn.iter().enumerate() {
                        if !t.holds(0, v) {
                            c &= !(1u64 << i);
                        }
                    }
                }
            }
        }
        (p, c)
    }

    /// The boxes a box becomes as it enters the ruleset: packet mark 0,
    /// connection mark 0 for a new connection and, for later packets, each
    /// value it entered with (`ct0`) as its current one.
    pub fn enter(&self, b: PBox) -> Boxes {
        let mut out = Boxes::new();
        let mut base = b;
        base.mark &= 1;
        if base.mark == 0 {
            return out;
        }
        if base.ct & CtStates::NEW != 0 {
            let mut n = base.clone();
            n.ct = CtStates::NEW;
            n.ct0 &= 1;
            n.ctmark &= 1;
            n.nat &= nat::NONE;
            if !n.is_empty() {
                out.push(n);
            }
        }
        base.ct &= !CtStates::NEW;
        if base.ct != 0 {
            let both = base.ct0 & base.ctmark;
            for i in 0..self.conn.len() {
                if both & (1u64 << i) != 0 {
                    let mut x = base.clone();
                    x.ct0 = 1u64 << i;
                    x.ctmark = 1u64 << i;
                    out.push(x);
                }
            }
        }
        out
    }

    /// The box with its current marks forgotten: the packets as they
    /// entered (their other fields and `ct0` never change).
    pub fn erase(&self, mut b: PBox) -> PBox {
        b.mark = self.all_packet();
        b.ctmark = self.all_conn();
        b
    }

    /// The boxes the packets of `b` become under a rewrite.
    pub fn rewrite(&self, rw: &MarkRewrite, b: PBox) -> Boxes {
        let mut out = Boxes::new();
        // The other mark is read only when copying; then split by its value.
        let (others, other_len) = match rw.field {
            MarkField::Packet => (b.ctmark, self.conn.len()),
            MarkField::Conn => (b.mark, self.packet.len()),
        };
        let groups: smallvec::SmallVec<[u64; 4]> = if rw.copy == 0 {
            smallvec::smallvec![others]
        } else {
            (0..other_len)
                .filter(|i| others & (1u64 << i) != 0)
                .map(|i| 1u64 << i)
                .collect()
        };
        for g in groups {
            let other_value = |bits: u64, vals: &[u32]| vals[bits.trailing_zeros() as usize];
            let mut x = b.clone();
            match rw.field {
                MarkField::Packet => {
                    x.ctmark = g;
                    let ct = other_value(g, &self.conn);
                    let mut img = 0u64;
                    for (i, &v) in self.packet.iter().enumerate() {
                        if b.mark & (1u64 << i) != 0 {
                            img |= 1u64 << Self::index(&self.packet, rw.apply(v, ct).0);
                        }
                    }
                    x.mark = img;
                }
                MarkField::Conn => {
                    x.mark = g;
                    let m = other_value(g, &self.packet);
                    let mut img = 0u64;
                    for (i, &v) in self.conn.iter().enumerate() {
                        if b.ctmark & (1u64 << i) != 0 {
                            img |= 1u64 << Self::index(&self.conn, rw.apply(m, v).1);
                        }
                    }
                    x.ctmark = img;
                }
            }
            out.push(x);
        }
        out
    }

    /// The value of a one-value packet mark set.
    pub fn packet_value(&self, bits: u64) -> u32 {
        self.packet[bits.trailing_zeros() as usize]
    }
}

/// Protocols whose packets carry ports (a port translation applies to
/// them only): TCP, UDP, DCCP, SCTP, UDP-Lite.
pub const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

pub(crate) fn port_protocols() -> ISet<u8> {
    ISet::from_ranges(PORT_PROTOCOLS.iter().map(|&p| (p, p)))
}

/// A destination translation as the engine applies it to a box: the new
/// addresses (`None`: kept) and the new ports (`None`: kept; applied to
/// packets of [`PORT_PROTOCOLS`] only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DstRewrite {
    /// The new destination addresses, of the box's family.
    pub to: Option<ISet<u128>>,
    /// The new destination port range.
    pub ports: Option<(u16, u16)>,
}

impl DstRewrite {
    /// Whether the kernel chooses among several values (an address or
    /// port range): then which one a packet gets is not determined by its
    /// header, and each is a branch.
    pub fn chooses(&self) -> bool {
        self.to
            .as_ref()
            .is_some_and(|t| t.ranges().len() != 1 || t.ranges()[0].0 != t.ranges()[0].1)
            || self.ports.is_some_and(|(a, b)| a != b)
    }

    /// Translate the first packets in `b` (state NEW, untranslated): the
    /// packets that already carry the only destination the rule gives
    /// (the kernel leaves them untranslated, without the DNAT status),
    /// then the translated ones, which keep their entry destination in
    /// [`PBox::orig`] (see [`PBox::translated`]).
    pub fn apply(&self, b: &PBox) -> (Vec<PBox>, Vec<PBox>) {
        let mut same = Vec::new();
        let mut moved = Vec::new();
        // Ports change for port protocols only.
        let mut parts: Vec<(PBox, bool)> = Vec::new();
        match self.ports {
            Some(_) => {
                let pp = port_protocols();
                let with = b.proto.intersect(&pp);
                let without = b.proto.difference(&pp);
                if !with.is_empty() {
                    let mut x = b.clone();
                    x.proto = with;
                    parts.push((x, true));
                }
                if !without.is_empty() {
                    let mut x = b.clone();
                    x.proto = without;
                    parts.push((x, false));
                }
            }
            None => parts.push((b.clone(), false)),
        }
        for (x, ports) in parts {
            let new_ports = if ports { self.ports } else { None };
            // The identity part: the destination (and port) is already the
            // one value the rule gives.
            let mut id = x.clone();
            let single =
                |s: &ISet<u128>| s.ranges().len() == 1 && s.ranges()[0].0 == s.ranges()[0].1;
            let fixed_addr = match &self.to {
                None => true,
                Some(t) if single(t) => {
                    id.dst = id.dst.intersect(t);
                    true
                }
                Some(_) => false,
            };
            let fixed_port = match new_ports {
                None => true,
                Some((a, b)) if a == b => {
                    id.dport = id.dport.intersect(&ISet::single(a));
                    true
                }
                Some(_) => false,
            };
            let rest = if fixed_addr && fixed_port && !id.is_empty() {
                let r = x.subtract(&id);
                same.push(id);
                r
            } else {
                vec![x]
            };
            for mut y in rest {
                let to = self.to.clone().unwrap_or_else(|| y.dst.clone());
                let odst = std::mem::replace(&mut y.dst, to);
                let odport = match new_ports {
                    Some((a, b)) => std::mem::replace(&mut y.dport, ISet::range(a, b)),
                    None => y.dport.clone(),
                };
                y.orig = OrigDst {
                    dst: odst,
                    dport: odport,
                }
                .normalize(y.fam);
                y.nat = nat::add_dnat(y.nat);
                if !y.is_empty() {
                    moved.push(y);
                }
            }
        }
        (same, moved)
    }
}

/// The boxes (one per family with addresses) a match covers.
pub fn match_boxes(m: &Match, u: &IfaceUniverse) -> Boxes {
    let mut out = Boxes::new();
    if m.is_empty() {
        return out;
    }
    let iif = u.atoms(&m.iif);
    let oif = u.atoms(&m.oif);
    if iif.is_empty() || oif.is_empty() {
        return out;
    }
    let (mark, ctmark) = u.marks.tests(&m.marks);
    if mark == 0 || ctmark == 0 {
        return out;
    }
    let common = |fam, src, dst| PBox {
        fam,
        src,
        dst,
        proto: m.protocol.clone(),
        sport: m.sport.clone(),
        dport: m.dport.clone(),
        iif: iif.clone(),
        oif: oif.clone(),
        ct: m.ct_state.0,
        mark,
        ctmark,
        ct0: u.marks.all_conn(),
        x: m.extra.clone(),
        nat: m.ct_nat.0 & nat::ALL,
        orig: None,
    };
    let mut push = |b: PBox| {
        for b in conn_fields(m, u, b) {
            if !b.is_empty() {
                out.push(b);
            }
        }
    };
    if !m.src.v4.is_empty() && !m.dst.v4.is_empty() {
        push(common(Fam::V4, widen(&m.src.v4), widen(&m.dst.v4)));
    }
    if !m.src.v6.is_empty() && !m.dst.v6.is_empty() {
        push(common(Fam::V6, m.src.v6.clone(), m.dst.v6.clone()));
    }
    out
}

/// Which packets of a connection a flow box stands for (see
/// [`flow_packets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPackets {
    /// The packet that opens it: a TCP SYN (flags exactly SYN), an ICMP or
    /// ICMPv6 echo request (type 8 or 128, code 0), sent to one host
    /// (packet type unicast).
    Opening,
    /// Its replies: TCP packets with any flag combination conntrack tracks
    /// ([`xf::tcp_flags_tracked`]), ICMP echo replies (type 0 or 129),
    /// unicast.
    Replies,
}

/// The part of a flow box (every value of the rare fields) that holds the
/// packets `which` names: the box split by protocol into its TCP, ICMP,
/// ICMPv6 and other parts, each narrowed to those packets' flags, types
/// and packet type.
pub fn flow_packets(b: PBox, which: FlowPackets) -> Boxes {
    use ringfence_model::proto::{ICMP, ICMPV6, TCP};
    let mut out = Boxes::new();
    let unicast = |x: &mut ringfence_model::ExtraFields| {
        x.pkttype = ISet::single(xf::pkttype::HOST);
    };
    let mut rest = b.proto.clone();
    for p in [TCP, ICMP, ICMPV6] {
        if !b.proto.contains(p) {
            continue;
        }
        rest = rest.difference(&ISet::single(p));
        let mut x =
            b.x.as_deref()
                .cloned()
                .unwrap_or_else(ringfence_model::ExtraFields::full);
        if p == TCP {
            let flags = match which {
                FlowPackets::Opening => ISet::single(xf::tcp_flag::SYN),
                FlowPackets::Replies => xf::tcp_flags_tracked(),
            };
            x.tcp_flags = x.tcp_flags.intersect(&flags);
        } else {
            let ty = match (p == ICMP, which) {
                (true, FlowPackets::Opening) => 8,
                (true, FlowPackets::Replies) => 0,
                (false, FlowPackets::Opening) => 128,
                (false, FlowPackets::Replies) => 129,
            };
            x.icmp = x.icmp.intersect(&xf::icmp_values(ty, Some(0)));
        }
        unicast(&mut x);
        let mut part = b.clone();
        part.proto = ISet::single(p);
        part.x = xf::normalize(Some(Box::new(x)));
        if !part.is_empty() {
            out.push(part);
        }
    }
    if !rest.is_empty() {
        let mut part = b;
        part.proto = rest;
        let mut x = part
            .x
            .as_deref()
            .cloned()
            .unwrap_or_else(ringfence_model::ExtraFields::full);
        unicast(&mut x);
        part.x = xf::normalize(Some(Box::new(x)));
        if !part.is_empty() {
            out.push(part);
        }
    }
    out
}

/// A match box restricted by the match's address types and original
/// tuple (see [`match_boxes`]): the address types to the addresses that
/// may have them, and the original tuple, for a first packet, to its
/// source and its destination as it entered (the current one, or the
/// original one of a translated box: two boxes). For a later packet the
/// model does not know the connection's direction, so the original tuple
/// does not restrict it (the rule then may or may not match, see
/// [`match_undecided`]).
fn conn_fields(m: &Match, u: &IfaceUniverse, mut b: PBox) -> Boxes {
    let mut out = Boxes::new();
    if m.src_type.is_test() {
        let (holds, maybe) = addr_types(m.src_type.0, b.fam, u.locals.as_ref());
        b.src = b.src.intersect(&holds.union(&maybe));
    }
    if m.dst_type.is_test() {
        let (holds, maybe) = addr_types(m.dst_type.0, b.fam, u.locals.as_ref());
        b.dst = b.dst.intersect(&holds.union(&maybe));
    }
    if let Some(lim) = m.iface_types.as_deref() {
        let mut parts = vec![b];
        for (t, side, dev) in lim.tests() {
            parts = parts
                .into_iter()
                .flat_map(|b| iface_types_cut(t.0, side, dev, u, b))
                .collect();
        }
        let plain = Match {
            iface_types: None,
            src_type: AddrTypes::ALL,
            dst_type: AddrTypes::ALL,
            ..m.clone()
        };
        for b in parts {
            out.extend(conn_fields(&plain, u, b));
        }
        return out;
    }
    let Some(o) = m.ct_orig.as_deref() else {
        out.push(b);
        return out;
    };
    let (osrc, odst) = match b.fam {
        Fam::V4 => (widen(&o.src.v4), widen(&o.dst.v4)),
        Fam::V6 => (o.src.v6.clone(), o.dst.v6.clone()),
    };
    let mut later = b.clone();
    later.ct &= !CtStates::NEW;
    let mut first = b;
    first.ct &= CtStates::NEW;
    if first.ct != 0 {
        first.src = first.src.intersect(&osrc);
        first.sport = first.sport.intersect(&o.sport);
        let mut plain = first.clone();
        plain.nat &= !nat::DNAT_ANY;
        plain.dst = plain.dst.intersect(&odst);
        plain.dport = plain.dport.intersect(&o.dport);
        let mut moved = first;
        moved.nat &= nat::DNAT_ANY;
        let od = moved
            .orig
            .take()
            .map_or_else(|| OrigDst::full(moved.fam), |b| *b);
        moved.orig = OrigDst {
            dst: od.dst.intersect(&odst),
            dport: od.dport.intersect(&o.dport),
        }
        .normalize(moved.fam);
        out.extend([plain, moved]);
    }
    if later.ct != 0 {
        out.push(later);
    }
    out
}

/// Whether a match has a part the model cannot decide for every packet
/// it may match, so that the rule may or may not match: an address-type
/// test on addresses whose type is not known (`LOCAL` without the host's
/// addresses, `UNICAST` and the like for addresses routes decide), or an
/// original-tuple test on packets other than a connection's first.
pub fn match_undecided(m: &Match, u: &IfaceUniverse) -> bool {
    let types = |t: ringfence_model::AddrTypes| {
        t.is_test()
            && [Fam::V4, Fam::V6]
                .into_iter()
                .any(|f| !addr_types(t.0, f, u.locals.as_ref()).1.is_empty())
    };
    types(m.src_type)
        || types(m.dst_type)
        || m.iface_types.as_deref().is_some_and(|l| {
            l.tests().any(|(t, _, _)| {
                [Fam::V4, Fam::V6].into_iter().any(|f| {
                    iface_choices(u).iter().any(|dev| {
                        !split_types(t.0, &type_classes(f, u.locals.as_ref(), *dev))
                            .1
                            .is_empty()
                    })
                })
            })
        })
        || (m.ct_orig.is_some() && m.ct_state.0 & !CtStates::NEW & CtStates::ALL.0 != 0)
}

/// The interfaces an interface-limited type lookup can see, as the type
/// classes tell them apart: none (a host-wide lookup), each interface
/// that holds known host addresses, and any other one (`""`).
fn iface_choices(u: &IfaceUniverse) -> Vec<Option<&str>> {
    if !placed_atoms(u) {
        return vec![None, Some(ANY_IFACE)];
    }
    let mut v = vec![None, Some("")];
    if let Some(l) = &u.locals {
        v.extend(l.placed.iter().map(|(n, _, _)| Some(n.as_str())));
    }
    v
}

/// An interface that may be any, one holding host addresses included
/// (see [`placed_atoms`]).
const ANY_IFACE: &str = "\0any";

/// Whether every interface holding known host addresses is an interface
/// atom of its own ([`IfaceUniverse::with_local_addrs`] makes them so for
/// the rulesets it was built from). Otherwise an atom may stand for such an
/// interface and others alike, and a limited test reads every host address
/// as `LOCAL` or not on any named interface.
fn placed_atoms(u: &IfaceUniverse) -> bool {
    u.locals.as_ref().is_none_or(|l| {
        l.placed
            .iter()
            .all(|(n, _, _)| u.reps.iter().any(|r| r.as_deref() == Some(n.as_str())))
    })
}

/// `b` cut to the packets that may pass an address-type test limited to
/// one of their interfaces ([`ringfence_model::IfaceTypes`]): one piece per
/// interface the type classes tell apart (no interface, each interface
/// holding known host addresses, any other), each cut to the addresses
/// whose type there may be in `types`.
fn iface_types_cut(
    types: u16,
    side: ringfence_model::AddrSide,
    dev: ringfence_model::IfaceSide,
    u: &IfaceUniverse,
    b: PBox,
) -> Vec<PBox> {
    use ringfence_model::{AddrSide, IfaceSide};
    let devs = match dev {
        IfaceSide::In => b.iif.clone(),
        IfaceSide::Out => b.oif.clone(),
    };
    let mut rest = devs.intersect(&u.named());
    let mut pieces = vec![(devs.intersect(&u.none()), None)];
    if !placed_atoms(u) {
        pieces.push((rest, Some(ANY_IFACE)));
    } else {
        if let Some(l) = &u.locals {
            for (name, _, _) in &l.placed {
                let atom = ISet::single(u.atom_of(Some(name)));
                let here = rest.intersect(&atom);
                rest = rest.difference(&atom);
                pieces.push((here, Some(name.as_str())));
            }
        }
        pieces.push((rest, Some("")));
    }
    let mut out = Vec::new();
    for (atoms, on) in pieces {
        if atoms.is_empty() {
            continue;
        }
        let (holds, maybe) = split_types(types, &type_classes(b.fam, u.locals.as_ref(), on));
        let mut x = b.clone();
        match dev {
            IfaceSide::In => x.iif = atoms,
            IfaceSide::Out => x.oif = atoms,
        }
        let allowed = holds.union(&maybe);
        match side {
            AddrSide::Src => x.src = x.src.intersect(&allowed),
            AddrSide::Dst => x.dst = x.dst.intersect(&allowed),
        }
        if !x.is_empty() {
            out.push(x);
        }
    }
    out
}

/// The addresses of a family by the routing types each may have: the host's
/// addresses (and loopback) `LOCAL`, multicast `MULTICAST`, 255.255.255.255
/// `BROADCAST`, any other address any other type (a route or a subnet
/// broadcast address decides, which the model does not know), and, when
/// the host's addresses are not known, `LOCAL` too. With the lookup limited
/// to an interface (`on`: `Some(name)`, `""` for one that holds no known
/// host address) a host address is `LOCAL` only on its own interface, not
/// `LOCAL` on the others, and either where its interface is not known
/// (without the host's addresses: any address may be either).
fn type_classes(fam: Fam, locals: Option<&Locals>, on: Option<&str>) -> Vec<(ISet<u128>, u16)> {
    use ringfence_model::AddrTypes as T;
    let all = T::ALL.0;
    let not_local = all & !(T::LOCAL | T::MULTICAST);
    let (loopback, multicast, bcast) = match fam {
        Fam::V4 => (
            ISet::range(0x7f00_0000u128, 0x7fff_ffff),
            ISet::range(0xe000_0000u128, 0xefff_ffff),
            ISet::single(0xffff_ffffu128),
        ),
        Fam::V6 => (
            ISet::single(1u128),
            ISet::range(0xff00u128 << 112, u128::MAX),
            ISet::empty(),
        ),
    };
    let local = locals.map(|l| l.of(fam).clone()).unwrap_or(loopback);
    let multicast = multicast.difference(&local);
    let bcast = bcast.difference(&local).difference(&multicast);
    let other = fam_full(fam)
        .difference(&local)
        .difference(&multicast)
        .difference(&bcast);
    let mut classes = match (locals, on) {
        (_, None) => vec![(local, T::LOCAL)],
        (None, Some(_)) | (Some(_), Some(ANY_IFACE)) => vec![(local, T::LOCAL | not_local)],
        (Some(l), Some(name)) => {
            let here = l.on(fam, name);
            let unknown = match fam {
                Fam::V4 => l.unplaced.0.clone(),
                Fam::V6 => l.unplaced.1.clone(),
            };
            let elsewhere = local.difference(&here).difference(&unknown);
            vec![
                (here, T::LOCAL),
                (unknown, T::LOCAL | not_local),
                (elsewhere, not_local),
            ]
        }
    };
    let other_types = if locals.is_some() {
        not_local
    } else {
        all & !T::MULTICAST
    };
    classes.extend([
        (multicast, T::MULTICAST),
        (bcast, T::BROADCAST),
        (other, other_types),
    ]);
    classes
}

/// The addresses whose type certainly is in `types`, and those whose type
/// may or may not be, from [`type_classes`].
fn split_types(types: u16, classes: &[(ISet<u128>, u16)]) -> (ISet<u128>, ISet<u128>) {
    let mut holds = ISet::empty();
    let mut maybe = ISet::empty();
    for (set, possible) in classes {
        if possible & !types == 0 {
            holds = holds.union(set);
        } else if possible & types != 0 {
            maybe = maybe.union(set);
        }
    }
    (holds, maybe)
}

/// The addresses of a family whose routing type certainly is in `types`,
/// and those whose type may or may not be: the host's addresses (and
/// loopback) are `LOCAL`, multicast addresses `MULTICAST`, 255.255.255.255
/// `BROADCAST`; any other address may be of any other type (a route or a
/// subnet broadcast address decides, which the model does not know), and,
/// when the host's addresses are not known, `LOCAL` too.
pub fn addr_types(types: u16, fam: Fam, locals: Option<&Locals>) -> (ISet<u128>, ISet<u128>) {
    // The host-wide lookup: the classes with no interface limit.
    split_types(types, &type_classes(fam, locals, None))
}

/// Conntrack's priority on the prerouting and output hooks: base chains
/// there with a lower priority run before conntrack has looked at the packet.
pub const CONNTRACK_PRIORITY: i32 = -200;

/// What the stage a base chain runs at lets its rules (and the rules of the
/// chains it jumps to) see of a packet. Before routing (prerouting, input)
/// a packet has no output interface; a packet the host sends (output, and
/// postrouting on the output path) has no input interface; before conntrack
/// (priority below [`CONNTRACK_PRIORITY`] on prerouting and output) its
/// conntrack state reads INVALID whatever the connection's state. The kernel
/// compares a missing interface as the empty name, which the model's "no
/// interface" stands for. The default stage hides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Stage(u8);

impl Stage {
    const NO_OIF: u8 = 1;
    const NO_IIF: u8 = 2;
    const PRE_CT: u8 = 4;

    /// The stage of a base chain on `hook` at `priority`, met on the path
    /// that `traversal` names ([`ringfence_model::Hook::path`]).
    pub fn of(
        traversal: ringfence_model::Hook,
        hook: ringfence_model::Hook,
        priority: i32,
    ) -> Self {
        use ringfence_model::Hook as H;
        let mut bits = match hook {
            H::Prerouting | H::Input => Self::NO_OIF,
            H::Output => Self::NO_IIF,
            H::Postrouting if traversal == H::Output => Self::NO_IIF,
            H::Forward | H::Postrouting => 0,
        };
        if matches!(hook, H::Prerouting | H::Output) && priority < CONNTRACK_PRIORITY {
            bits |= Self::PRE_CT;
        }
        Self(bits)
    }

    /// The stage of base chain `c` of `rs` on the path `traversal` names
    /// (the default stage for a chain that is no base chain).
    pub fn of_chain(rs: &Ruleset, traversal: ringfence_model::Hook, c: usize) -> Self {
        rs.chains[c]
            .base
            .as_ref()
            .map(|b| Self::of(traversal, b.hook, b.runs_at()))
            .unwrap_or_default()
    }

    /// Whether the stage hides nothing.
    pub fn is_plain(self) -> bool {
        self.0 == 0
    }

    /// Whether a rule reads or writes something this stage hides, so that
    /// [`Stage::rewrite`] changes its boxes, [`Stage::never_matches`] holds
    /// for its match or [`Stage::voids`] for its mark rewrite.
    pub fn changes(self, r: &ringfence_model::Rule, u: &IfaceUniverse) -> bool {
        let m = &r.matches;
        (self.0 & Self::NO_OIF != 0 && !m.oif.is_any() && u.atoms(&m.oif) != u.full())
            || (self.0 & Self::NO_IIF != 0 && !m.iif.is_any() && u.atoms(&m.iif) != u.full())
            || (self.0 & Self::PRE_CT != 0
                && (m.ct_state.0 & CtStates::ALL.0 != CtStates::ALL.0 || m.ct_nat.is_test()))
            || self.never_matches(m)
            || matches!(&r.action, ringfence_model::Action::Mark(rw) if self.voids(rw))
    }

    /// Whether the stage runs before conntrack has given the packet a
    /// connection (so there is no connection mark to read or write).
    pub fn before_conntrack(self) -> bool {
        self.0 & Self::PRE_CT != 0
    }

    /// Whether a match never holds at this stage: before conntrack a packet
    /// has no connection, and a connection mark test (`-m connmark`, negated
    /// or not; nft `ct mark`, whose load breaks the rule) fails without one.
    pub fn never_matches(self, m: &Match) -> bool {
        self.before_conntrack()
            && m.marks
                .iter()
                .any(|t| t.field == ringfence_model::MarkField::Conn)
    }

    /// Whether a mark rewrite does nothing at this stage: before conntrack
    /// there is no connection mark to write (`CONNMARK --set-mark`,
    /// `--save-mark`, nft `ct mark set`) or to copy from (`--restore-mark`,
    /// nft `meta mark set ct mark`), so the marks stay as they are.
    pub fn voids(self, rw: &ringfence_model::MarkRewrite) -> bool {
        self.before_conntrack() && (rw.field == ringfence_model::MarkField::Conn || rw.copy != 0)
    }

    /// A rule's match box as this stage evaluates it, over the packet's real
    /// fields: a hidden interface reads as "no interface" and a hidden state
    /// as INVALID, so such a field of the box becomes everything (the match
    /// holds there for every packet) or the box becomes empty (`None`: it
    /// holds for none).
    pub fn rewrite(self, mut b: PBox, u: &IfaceUniverse) -> Option<PBox> {
        let none = u.none();
        if self.0 & Self::NO_OIF != 0 {
            if b.oif.intersect(&none).is_empty() {
                return None;
            }
            b.oif = u.full();
        }
        if self.0 & Self::NO_IIF != 0 {
            if b.iif.intersect(&none).is_empty() {
                return None;
            }
            b.iif = u.full();
        }
        if self.0 & Self::PRE_CT != 0 {
            if b.ct & CtStates::INVALID == 0 || b.nat & nat::NONE == 0 {
                return None;
            }
            b.ct = CtStates::ALL.0;
            b.nat = nat::ALL;
        }
        Some(b)
    }

    /// The packet as a rule at this stage sees it (borrowed when the stage
    /// hides nothing the packet has).
    pub fn packet(self, p: &Packet) -> std::borrow::Cow<'_, Packet> {
        let no_oif = self.0 & Self::NO_OIF != 0 && p.oif.is_some();
        let no_iif = self.0 & Self::NO_IIF != 0 && p.iif.is_some();
        let pre_ct = self.0 & Self::PRE_CT != 0 && p.ct_state != CtStates::INVALID;
        if !(no_oif || no_iif || pre_ct) {
            return std::borrow::Cow::Borrowed(p);
        }
        let mut q = p.clone();
        if no_oif {
            q.oif = None;
        }
        if no_iif {
            q.iif = None;
        }
        if pre_ct {
            q.ct_state = CtStates::INVALID;
        }
        std::borrow::Cow::Owned(q)
    }
}

/// The single-packet box of `p`.
pub fn packet_box(p: &Packet, u: &IfaceUniverse) -> PBox {
    let (fam, s, d) = match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (Fam::V4, u32::from(s) as u128, u32::from(d) as u128),
        (IpAddr::V6(s), IpAddr::V6(d)) => (Fam::V6, u128::from(s), u128::from(d)),
        (s, d) => (Fam::V6, to_v6(s), to_v6(d)),
    };
    PBox {
        fam,
        src: ISet::single(s),
        dst: ISet::single(d),
        proto: ISet::single(p.protocol),
        sport: ISet::single(p.sport),
        dport: ISet::single(p.dport),
        iif: ISet::single(u.atom_of(p.iif.as_deref())),
        oif: ISet::single(u.atom_of(p.oif.as_deref())),
        ct: p.ct_state,
        mark: 1,
        ctmark: u.marks.entry_conn(p.ct_state),
        ct0: u.marks.entry_conn(p.ct_state),
        x: packet_extra(p),
        nat: entry_nat(p.ct_state),
        orig: None,
    }
}

/// The translation states ([`nat`]) a packet in conntrack states `ct`
/// enters with: none for a new connection's first packet (and a packet
/// without a connection), any for a later one (its connection may have
/// been translated).
pub fn entry_nat(ct: u8) -> u8 {
    if ct & (CtStates::ESTABLISHED | CtStates::RELATED) == 0 {
        nat::NONE
    } else {
        nat::ALL
    }
}

/// The rare fields of a packet as a box holds them: a single value for
/// each field the packet gives, every value for the others.
pub fn packet_extra(p: &Packet) -> Extra {
    if p.tcp_flags.is_none()
        && p.icmp_type.is_none()
        && p.length.is_none()
        && p.tos.is_none()
        && p.pkttype.is_none()
        && p.mac_src.is_none()
    {
        return None;
    }
    let mut x = ringfence_model::ExtraFields::full();
    if let Some(f) = p.tcp_flags {
        x.tcp_flags = ISet::single(f);
    }
    if let Some(v) = p.icmp() {
        x.icmp = ISet::single(v);
    }
    if let Some(v) = p.length {
        x.length = ISet::single(v);
    }
    if let Some(v) = p.tos {
        x.tos = ISet::single(v);
    }
    if let Some(v) = p.pkttype {
        x.pkttype = ISet::single(v);
    }
    if let Some(v) = p.mac_src {
        x.mac_src = ISet::single(v);
    }
    xf::normalize(Some(Box::new(x)))
}

fn to_v6(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(v.to_ipv6_mapped()),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// Render an address set as CIDRs (or `a-b` ranges when a CIDR list would be long).
pub fn format_addrs(fam: Fam, s: &ISet<u128>) -> Vec<String> {
    if *s == fam_full(fam) {
        return vec![match fam {
            Fam::V4 => "0.0.0.0/0".into(),
            Fam::V6 => "::/0".into(),
        }];
    }
    let bits = if fam == Fam::V4 { 32 } else { 128 };
    let show = |v: u128| match fam {
        Fam::V4 => Ipv4Addr::from(v as u32).to_string(),
        Fam::V6 => Ipv6Addr::from(v).to_string(),
    };
    let mut out = Vec::new();
    for &(lo, hi) in s.ranges() {
        let cidrs = range_to_cidrs(lo, hi, bits);
        if cidrs.len() <= 4 {
            for (a, l) in cidrs {
                out.push(format!("{}/{}", show(a), l));
            }
        } else {
            out.push(format!("{}-{}", show(lo), show(hi)));
        }
    }
    out
}

fn range_to_cidrs(mut lo: u128, hi: u128, bits: u32) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    loop {
        // Largest aligned block starting at lo that stays within hi.
        let mut size_bits = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_bits > 0 {
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if lo.checked_add(span).is_some_and(|e| e <= hi) {
                break;
            }
            size_bits -= 1;
        }
        out.push((lo, bits - size_bits));
        let span = if size_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        match lo.checked_add(span) {
            Some(e) if e < hi => lo = e + 1,
            _ => break,
        }
        if out.len() > 8 {
            break;
        }
    }
    out
}

/// The rarer fields of a region for people, or `None` when it has every
/// value of each: `tcp flags FIN,SYN,RST,ACK = SYN`, `icmp type 8`,
/// `length 0-100`, `dscp 46`, `packet type broadcast`, `mac 00:11:22:33:44:55`,
/// joined with "; ".
pub fn format_extra(x: &Extra) -> Option<String> {
    let x = x.as_deref()?;
    let mut out = Vec::new();
    if !x.tcp_flags.is_full() {
        out.push(format!("tcp flags {}", flags_text(&x.tcp_flags)));
    }
    if !x.icmp.is_full() {
        let items: Vec<String> = x
            .icmp
            .ranges()
            .iter()
            .map(|&(a, b)| {
                let (ta, ca, tb, cb) = (a >> 8, a & 0xff, b >> 8, b & 0xff);
                match (ta == tb, ca == 0 && cb == 0xff) {
                    (true, true) => format!("type {ta}"),
                    (true, false) if ca == cb => format!("type {ta} code {ca}"),
                    (true, false) => format!("type {ta} codes {ca}-{cb}"),
                    (false, true) => format!("types {ta}-{tb}"),
                    (false, false) => format!("{ta}/{ca}-{tb}/{cb}"),
                }
            })
            .collect();
        out.push(format!("icmp {}", items.join(", ")));
    }
    if !x.length.is_full() {
        let items: Vec<String> = x
            .length
            .ranges()
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        out.push(format!("length {}", items.join(", ")));
    }
    if !x.tos.is_full() {
        // DSCP when the set ignores the ECN bits, else the whole byte.
        let dscp_only = (0..=255u8).all(|b| x.tos.contains(b) == x.tos.contains(b & 0xfc));
        let (what, vals): (&str, Vec<u8>) = if dscp_only {
            (
                "dscp",
                (0..64u8).filter(|d| x.tos.contains(d << 2)).collect(),
            )
        } else {
            ("tos", (0..=255u8).filter(|b| x.tos.contains(*b)).collect())
        };
        let list = |v: &[u8]| {
            v.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all = if dscp_only { 64 } else { 256 };
        if vals.len() * 2 > all {
            let missing: Vec<u8> = (0..=255u8)
                .take(all)
                .filter(|d| !vals.contains(d))
                .collect();
            out.push(format!("{what} all but {}", list(&missing)));
        } else {
            out.push(format!("{what} {}", list(&vals)));
        }
    }
    if !x.pkttype.is_full() {
        let names = ["unicast", "broadcast", "multicast", "otherhost"];
        let vals: Vec<String> = (0..=255u8)
            .filter(|t| x.pkttype.contains(*t))
            .take(8)
            .map(|t| {
                names
                    .get(t as usize)
                    .map(|n| n.to_string())
                    .unwrap_or(t.to_string())
            })
            .collect();
        out.push(format!("packet type {}", vals.join(", ")));
    }
    if x.mac_src != xf::all_macs() {
        let mac = |v: u64| {
            (0..6)
                .rev()
                .map(|i| format!("{:02x}", (v >> (8 * i)) & 0xff))
                .collect::<Vec<_>>()
                .join(":")
        };
        let items: Vec<String> = x
            .mac_src
            .ranges()
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    mac(a)
                } else {
                    format!("{}-{}", mac(a), mac(b))
                }
            })
            .collect();
        out.push(format!("mac {}", items.join(", ")));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// A TCP flags set as `MASK = VALUE` (or `!=`) in flag names when it is one
/// masked test, else the flag bytes it holds.
fn flags_text(set: &ISet<u8>) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let names = |bits: u8| {
        if bits == 0 {
            return "NONE".to_string();
        }
        (0..8)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| NAMES[i])
            .collect::<Vec<_>>()
            .join(",")
    };
    // The narrowest mask first: the fewest flags a reader must check.
    let mut masks: Vec<u8> = (1..=255u8).collect();
    masks.sort_by_key(|m| m.count_ones());
    for mask in masks {
        let Some(v) = set.first() else { break };
        if xf::masked_bytes(mask, v & mask, false) == *set {
            return format!("{} = {}", names(mask), names(v & mask));
        }
        if let Some(out) = (0..=255u8).find(|b| !set.contains(*b)) {
            if xf::masked_bytes(mask, out & mask, true) == *set {
                return format!("{} != {}", names(mask), names(out & mask));
            }
        }
    }
    let vals: Vec<String> = (0..=255u8)
        .filter(|b| set.contains(*b))
        .take(16)
        .map(names)
        .collect();
    vals.join(" | ")
}

/// Render a port set (`any`, `443`, `8000-8080`, comma-joined).
pub fn format_ports(s: &ISet<u16>) -> String {
    if s.is_full() {
        return "any".into();
    }
    s.ranges()
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Render a protocol set (`any`, `tcp`, `udp`, numbers).
pub fn format_proto(s: &ISet<u8>) -> String {
    if s.is_full() {
        return "any".into();
    }
    s.ranges()
        .iter()
        .map(|&(a, b)| {
            if a == b {
                proto_name(a)
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Name of a protocol number.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

// Text for people. The functions above give the stable JSON forms
// (docs/verify-json.md); the ones below render the same sets for text
// output: lists joined with ", ", host addresses without `/32` or `/128`,
// and a set that is everything but a few values as `all but ...`. The
// `parse_*` functions read the JSON forms back, so text can be made from a
// report's fields.

/// The number of values of a set (saturating: a full IPv6 space does not fit).
fn set_size<T: Into<u128> + Copy + ringfence_model::interval::Bound>(s: &ISet<T>) -> u128 {
    s.ranges().iter().fold(0u128, |n, &(a, b)| {
        n.saturating_add((b.into() - a.into()).saturating_add(1))
    })
}

/// The complement of `s` inside `universe` when writing `s` as "all but"
/// it is shorter and clearer: `s` has several pieces, contains both ends of
/// the universe (so the complement has fewer pieces), and the complement
/// holds fewer values than `s`.
fn small_complement<T: Into<u128> + Copy + ringfence_model::interval::Bound>(
    s: &ISet<T>,
    universe: &ISet<T>,
) -> Option<ISet<T>> {
    if s.ranges().len() < 2 {
        return None;
    }
    let c = universe.difference(s);
    (!c.is_empty() && c.ranges().len() < s.ranges().len() && set_size(&c) < set_size(s))
        .then_some(c)
}

fn port_list(s: &ISet<u16>) -> String {
    s.ranges()
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A set for people: `any`, `none`, the listed items, or `all but ...`
/// when the set is the whole field except a few values.
fn set_text<T: Into<u128> + Copy + ringfence_model::interval::Bound>(
    s: &ISet<T>,
    list: fn(&ISet<T>) -> String,
) -> String {
    if s.is_full() {
        return "any".into();
    }
    if s.is_empty() {
        return "none".into();
    }
    match small_complement(s, &ISet::full()) {
        Some(c) => format!("all but {}", list(&c)),
        None => list(s),
    }
}

/// A port set for people: `any`, `443`, `22, 80-89`, or `all but 6` when
/// the set is every port except a few.
pub fn format_ports_text(s: &ISet<u16>) -> String {
    set_text(s, port_list)
}

/// Read a port set in the JSON form [`format_ports`] writes (`any`, `443`,
/// `8000-8080`, comma-joined). `None` for anything else.
pub fn parse_ports(text: &str) -> Option<ISet<u16>> {
    parse_set(text, |t| t.parse().ok())
}

/// Read `any` or comma-joined items and `first-last` ranges, each item read
/// by `one`. `None` when an item does not read or a range runs backwards.
fn parse_set<T: ringfence_model::interval::Bound + Ord + Copy>(
    text: &str,
    one: impl Fn(&str) -> Option<T>,
) -> Option<ISet<T>> {
    let text = text.trim();
    if text == "any" {
        return Some(ISet::full());
    }
    let mut ranges = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (one(a.trim())?, one(b.trim())?),
            None => {
                let v = one(item)?;
                (v, v)
            }
        };
        if a > b {
            return None;
        }
        ranges.push((a, b));
    }
    Some(ISet::from_ranges(ranges))
}

fn proto_list(s: &ISet<u8>) -> String {
    s.ranges()
        .iter()
        .map(|&(a, b)| match b - a {
            0 => proto_name(a),
            1 => format!("{}, {}", proto_name(a), proto_name(b)),
            _ => format!("{a}-{b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A protocol set for people: `any`, `tcp`, `tcp, udp`, `all but icmp`.
pub fn format_proto_text(s: &ISet<u8>) -> String {
    set_text(s, proto_list)
}

/// Read a protocol set in the JSON form [`format_proto`] writes (`any`,
/// names, numbers, `first-last`, comma-joined). `None` for anything else.
pub fn parse_protos(text: &str) -> Option<ISet<u8>> {
    parse_set(text, |t| crate::packet_line::parse_proto(t.trim()))
}

/// One address or CIDR for people: a host without its `/32` or `/128`.
fn addr_item(item: &str) -> &str {
    item.strip_suffix("/32")
        .filter(|a| !a.contains(':'))
        .or_else(|| item.strip_suffix("/128"))
        .unwrap_or(item)
}

/// An address set for people: the networks of [`format_addrs`] joined with
/// ", ", hosts without a prefix length, and `all but ...` when the set is
/// the whole family except a few addresses (`0.0.0.0/0` / `::/0` for all).
pub fn format_addrs_text(fam: Fam, s: &ISet<u128>) -> String {
    let list = |set: &ISet<u128>| {
        format_addrs(fam, set)
            .iter()
            .map(|i| addr_item(i).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.is_empty() {
        return "none".into();
    }
    match small_complement(s, &fam_full(fam)) {
        Some(c) => format!("all but {}", list(&c)),
        None => list(s),
    }
}

/// Read back the address list [`format_addrs`] writes (CIDRs and
/// `first-last` ranges of one family). `None` for anything else.
pub fn parse_addrs(items: &[String]) -> Option<(Fam, ISet<u128>)> {
    fn addr(t: &str) -> Option<(Fam, u128)> {
        match t.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some((Fam::V4, u128::from(u32::from(a)))),
            IpAddr::V6(a) => Some((Fam::V6, u128::from(a))),
        }
    }
    let mut fam = None;
    let mut ranges = Vec::new();
    for item in items {
        let (f, lo, hi) = if let Some((a, b)) = item.split_once('-') {
            let ((fa, lo), (fb, hi)) = (addr(a)?, addr(b)?);
            if fa != fb || lo > hi {
                return None;
            }
            (fa, lo, hi)
        } else {
            match item.trim().parse::<ipnet::IpNet>().ok()? {
                ipnet::IpNet::V4(n) => (
                    Fam::V4,
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.broadcast())),
                ),
                ipnet::IpNet::V6(n) => {
                    (Fam::V6, u128::from(n.network()), u128::from(n.broadcast()))
                }
            }
        };
        if *fam.get_or_insert(f) != f {
            return None;
        }
        ranges.push((lo, hi));
    }
    Some((fam?, ISet::from_ranges(ranges)))
}

/// An address with a port, as people and URLs write it: `198.18.1.20:443`,
/// IPv6 in brackets `[2001:db8::1]:443`.
pub fn format_endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Set operations for the walk's hot path: a fragment cut by many boxes
/// ends up with fields of many ranges (a source with a hole for every
/// earlier rule that took part of it), while a plan box's field is nearly
/// always one range. Against one range these find the few ranges concerned
/// by binary search instead of a merge over all of them; the results are
/// the same canonical sets [`ISet::meets`], [`ISet::intersect`] and
/// [`ISet::difference`] give.
pub(crate) mod sets {
    use super::ISet;
    use ringfence_model::interval::Bound;

    /// Below this many ranges the merge is as fast as a search.
    const MANY: usize = 4;

    /// The indexes `[i, j)` of the ranges of `a` that meet `[lo, hi]`.
    #[inline]
    fn window<T: Bound>(a: &[(T, T)], lo: T, hi: T) -> (usize, usize) {
        let i = a.partition_point(|r| r.1 < lo);
        let j = i + a[i..].partition_point(|r| r.0 <= hi);
        (i, j)
    }

    /// [`ISet::meets`].
    #[inline]
    pub fn meets<T: Bound>(a: &ISet<T>, b: &ISet<T>) -> bool {
        match (a.ranges(), b.ranges()) {
            ([x], [y]) => x.0.max(y.0) <= x.1.min(y.1),
            (many, [y]) | ([y], many) => {
                if many.len() > MANY {
                    let i = many.partition_point(|r| r.1 < y.0);
                    i < many.len() && many[i].0 <= y.1
                } else {
                    many.iter().any(|r| r.0 <= y.1 && y.0 <= r.1)
                }
            }
            (x, y) => meets_by_search(x, y),
        }
    }

    /// Whether two sorted, disjoint range lists share a value, with a
    /// binary search in the longer list for each range of the shorter one
    /// (each search starting where the last one ended) when the shorter is
    /// at most an eighth of the longer, and a merge otherwise.
    fn meets_by_search<T: Bound>(x: &[(T, T)], y: &[(T, T)]) -> bool {
        let (few, many) = if x.len() <= y.len() { (x, y) } else { (y, x) };
        if few.len() * 8 > many.len() {
            return ringfence_model::interval::ranges_meet(few, many);
        }
        let mut from = 0;
        for &(lo, hi) in few {
            from += many[from..].partition_point(|r| r.1 < lo);
            match many.get(from) {
                None => return false,
                Some(r) if r.0 <= hi => return true,
                Some(_) => {}
            }
        }
        false
    }

    /// `(a \ b, a ∩ b)`, taking `a`: when `a` has many ranges and `b` is
    /// one range, the difference is `a` itself with the window `b` meets
    /// cut out in place (no copy of the ranges around it), and the
    /// intersection is that window clipped.
    pub fn split_off<T: Bound>(mut a: ISet<T>, b: &ISet<T>) -> (ISet<T>, ISet<T>) {
        match (a.ranges(), b.ranges()) {
            (many, &[(lo, hi)]) if many.len() > MANY => {
                let (i, j) = window(many, lo, hi);
                if i == j {
                    return (a, ISet::empty());
                }
                let inside = ISet::from_sorted_ranges(
                    many[i..j].iter().map(|&(x, y)| (x.max(lo), y.min(hi))),
                );
                let below = lo.pred().map(|p| (many[i].0, p)).filter(|r| r.0 <= r.1);
                let above = hi.succ().map(|n| (n, many[j - 1].1)).filter(|r| r.0 <= r.1);
                let kept: smallvec::SmallVec<[(T, T); 2]> =
                    below.into_iter().chain(above).collect();
                a.replace_window(i, j, &kept);
                (a, inside)
            }
            _ => {
                let outside = difference(&a, b);
                if outside.is_empty() {
                    (outside, a)
                } else {
                    let inside = intersect(&a, b);
                    (outside, inside)
                }
            }
        }
    }

    /// [`ISet::is_subset`].
    #[inline]
    pub fn subset<T: Bound>(a: &ISet<T>, b: &ISet<T>) -> bool {
        match (a.ranges(), b.ranges()) {
            ([], _) => true,
            ([x, ..], [(lo, hi)]) => *lo <= x.0 && a.ranges()[a.ranges().len() - 1].1 <= *hi,
            _ => a.is_subset(b),
        }
    }

    /// [`ISet::intersect`].
    pub fn intersect<T: Bound>(a: &ISet<T>, b: &ISet<T>) -> ISet<T> {
        match (a.ranges(), b.ranges()) {
            (many, &[(lo, hi)]) | (&[(lo, hi)], many) if many.len() > MANY => {
                let (i, j) = window(many, lo, hi);
                ISet::from_sorted_ranges(many[i..j].iter().map(|&(x, y)| (x.max(lo), y.min(hi))))
            }
            _ => a.intersect(b),
        }
    }

    /// [`ISet::difference`].
    pub fn difference<T: Bound>(a: &ISet<T>, b: &ISet<T>) -> ISet<T> {
        match (a.ranges(), b.ranges()) {
            (many, &[(lo, hi)]) if many.len() > MANY => {
                let (i, j) = window(many, lo, hi);
                if i == j {
                    return a.clone();
                }
                let below = lo.pred().map(|p| (many[i].0, p)).filter(|r| r.0 <= r.1);
                let above = hi.succ().map(|n| (n, many[j - 1].1)).filter(|r| r.0 <= r.1);
                // Canonical as it stands: the kept ranges keep their gaps,
                // and the piece below `lo` and the one above `hi` are
                // separated by the cut-out `[lo, hi]`.
                ISet::from_sorted_ranges(
                    many[..i]
                        .iter()
                        .copied()
                        .chain(below)
                        .chain(above)
                        .chain(many[j..].iter().copied()),
                )
            }
            _ => a.difference(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The binary-search set operations give the merge's canonical sets,
        /// on sets of many ranges against one range (their fast path) and
        /// on every other combination (the fallback).
        #[test]
        fn fast_set_operations_give_the_same_sets_as_the_merge(
            many in proptest::collection::vec((0u16..2000, 0u16..40), 0..30),
            few in proptest::collection::vec((0u16..2000, 0u16..400), 0..3),
            edge in 0u8..4,
        ) {
            let a = ISet::from_ranges(many.iter().map(|&(lo, w)| (lo, lo + w)));
            let mut b = ISet::from_ranges(few.iter().map(|&(lo, w)| (lo, lo + w)));
            // Ranges that touch the type's ends, where pred/succ stop.
            match edge {
                1 => b = ISet::range(0, 700),
                2 => b = ISet::range(1500, u16::MAX),
                3 => b = ISet::full(),
                _ => {}
            }
            for (x, y) in [(&a, &b), (&b, &a), (&a, &a)] {
                proptest::prop_assert_eq!(sets::meets(x, y), x.meets(y));
                proptest::prop_assert_eq!(sets::intersect(x, y), x.intersect(y));
                proptest::prop_assert_eq!(sets::difference(x, y), x.difference(y));
                proptest::prop_assert_eq!(sets::subset(x, y), x.is_subset(y));
                proptest::prop_assert_eq!(
                    sets::split_off(x.clone(), y),
                    (x.difference(y), x.intersect(y))
                );
            }
        }
    }

    #[test]
    fn a_box_within_another_is_left_whole_by_the_cut() {
        let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>());
        // A fragment whose source has many holes, inside a box with one
        // source range, and one that sticks out of it by a single port.
        let mut frag = tcp_to(0x0a00_0010, 22);
        frag.src = ISet::from_ranges((0..12u128).map(|i| (i * 10, i * 10 + 4)));
        let mut cover = PBox::full(Fam::V4, &u);
        cover.src = ISet::range(0, 200);
        assert!(frag.within_plain(&cover));
        let (outside, inside) = frag.split(&cover).expect("overlaps");
        assert!(outside.is_empty());
        assert_eq!(inside, frag);
        let mut narrow = cover.clone();
        narrow.dport = ISet::range(23, 100);
        frag.dport = ISet::range(22, 23);
        assert!(!frag.within_plain(&narrow));
        assert!(!frag.split(&narrow).expect("overlaps").0.is_empty());
        // The rarer fields and a translated box are left to the cut.
        let mut with_x = cover.clone();
        with_x.x = Some(Box::new(ringfence_model::ExtraFields::full()));
        assert!(!frag.within_plain(&with_x));
    }

    #[test]
    fn cidr_rendering_splits_ranges_into_aligned_blocks() {
        let s = ISet::range(0x0a000000u128, 0x0a0000ffu128);
        assert_eq!(format_addrs(Fam::V4, &s), vec!["10.0.0.0/24"]);
        let s = ISet::range(0x0a000001u128, 0x0a000002u128);
        assert_eq!(
            format_addrs(Fam::V4, &s),
            vec!["10.0.0.1/32", "10.0.0.2/32"]
        );
        assert_eq!(format_addrs(Fam::V4, &fam_full(Fam::V4)), vec!["0.0.0.0/0"]);
    }

    fn tcp_to(dst: u128, dport: u16) -> PBox {
        let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>());
        let mut b = PBox::full(Fam::V4, &u);
        b.ct = CtStates::NEW;
        b.nat = nat::NONE;
        b.proto = ISet::range(6, 17);
        b.dst = ISet::range(dst, dst + 1);
        b.dport = ISet::single(dport);
        b
    }

    #[test]
    fn split_gives_the_pieces_subtract_gives_and_the_box_intersect_gives() {
        let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>());
        let mut a = tcp_to(0x0a00_0000, 22);
        a.dst = ISet::range(0x0a00_0000, 0x0a00_00ff);
        a.dport = ISet::range(1, 1000);
        let mut cutters = Vec::new();
        let mut b = PBox::full(Fam::V4, &u);
        b.dst = ISet::range(0x0a00_0010, 0x0a00_001f);
        b.proto = ISet::single(6);
        cutters.push(b.clone());
        b.dport = ISet::from_ranges([(20, 30), (443, 443)]);
        b.x = Some(Box::new(ringfence_model::ExtraFields {
            tcp_flags: ISet::single(2),
            ..ringfence_model::ExtraFields::full()
        }));
        cutters.push(b.clone());
        b.orig = OrigDst {
            dst: fam_full(Fam::V4),
            dport: ISet::single(25),
        }
        .normalize(Fam::V4);
        b.nat = nat::DNAT_ANY;
        cutters.push(b);
        let mut far = a.clone();
        far.dst = ISet::single(0x0b00_0000);
        cutters.push(far);
        for c in &cutters {
            match a.split(c) {
                Some((outside, inside)) => {
                    assert_eq!(outside, a.subtract(c));
                    assert_eq!(Some(inside), a.intersect(c));
                }
                None => assert!(!a.overlaps(c) && a.intersect(c).is_none()),
            }
        }
    }

    #[test]
    fn only_translated_boxes_hold_an_original_destination_and_it_splits_like_any_field() {
        let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>());
        let a = tcp_to(0x0a00_0001, 22);
        let mut b = a.clone();
        b.dport = ISet::range(20, 30);
        // Untranslated boxes stay without one through every operation.
        assert!(a.intersect(&b).is_some_and(|x| x.orig.is_none()));
        assert!(b.subtract(&a).iter().all(|p| p.orig.is_none()));
        assert_eq!(OrigDst::full(Fam::V4).normalize(Fam::V4), None);
        // Translated to 10.0.0.9:80, they keep 10.0.0.1-2 ports 20-30.
        let rw = DstRewrite {
            to: Some(ISet::single(0x0a00_0009)),
            ports: Some((80, 80)),
        };
        let (same, moved) = rw.apply(&b);
        assert!(same.is_empty());
        assert!(!moved.is_empty() && moved.iter().all(|m| m.orig.is_some()));
        // A test of the original port 25 (`--ctorigdstport 25`).
        let mut test = PBox::full(Fam::V4, &u);
        test.orig = OrigDst {
            dst: fam_full(Fam::V4),
            dport: ISet::single(25),
        }
        .normalize(Fam::V4);
        for m in &moved {
            let inside = m.intersect(&test).expect("port 25 is among 20-30");
            assert_eq!(
                inside.orig.as_ref().map(|o| &o.dport),
                Some(&ISet::single(25))
            );
            let outside = m.subtract(&test);
            let ports: Vec<&ISet<u16>> = outside
                .iter()
                .map(|p| &p.orig.as_ref().expect("still translated").dport)
                .collect();
            assert_eq!(ports, vec![&ISet::from_ranges([(20, 24), (26, 30)])]);
            assert!(inside.is_subset(&test) && !m.is_subset(&test));
            // Named as they entered: the original destination is back.
            let entered = inside.as_entered();
            assert_eq!(entered.dport, ISet::single(25));
            assert!(entered.orig.is_none());
        }
    }

    #[test]
    fn a_dnat_keeps_the_entry_destination_and_leaves_packets_already_there_untranslated() {
        let rw = DstRewrite {
            to: Some(ISet::single(0x0a00_0001)),
            ports: Some((22, 22)),
        };
        assert!(!rw.chooses());
        // 10.0.0.1-10.0.0.2 tcp..udp port 22: 10.0.0.1:22 for tcp and udp
        // is already the target; the rest moves.
        let b = tcp_to(0x0a00_0001, 22);
        let (same, moved) = rw.apply(&b);
        let port_protos = |x: &PBox| {
            x.proto
                .ranges()
                .iter()
                .all(|&(a, z)| (a..=z).all(|p| PORT_PROTOCOLS.contains(&p)))
        };
        // (a protocol without ports to 10.0.0.1 keeps its tuple too)
        assert!(!same.is_empty());
        assert!(same
            .iter()
            .all(|x| x.dst == ISet::single(0x0a00_0001) && x.nat == nat::NONE));
        for x in &moved {
            assert!(x.translated(), "{x:?}");
            assert_eq!(x.dst, ISet::single(0x0a00_0001));
            let entered = x.clone().as_entered();
            assert!(entered.is_subset(&b), "{entered:?}");
            if port_protos(x) {
                assert_eq!(x.dport, ISet::single(22));
            } else {
                // Protocols without ports keep theirs.
                let orig = x.orig.as_deref().cloned().unwrap_or(OrigDst::full(x.fam));
                assert_eq!(x.dport, orig.dport);
            }
        }
        // Together: every packet of `b` once.
        let mut back: Vec<PBox> = same.clone();
        back.extend(moved.iter().map(|x| x.clone().as_entered()));
        let total: u128 = back
            .iter()
            .map(|x| set_size(&x.dst) * set_size(&x.proto))
            .sum();
        assert_eq!(total, set_size(&b.dst) * set_size(&b.proto));
        // A range is a choice.
        assert!(DstRewrite {
            to: Some(ISet::range(1, 2)),
            ports: None
        }
        .chooses());
    }

    #[test]
    fn address_types_are_exact_for_local_with_the_host_addresses_and_may_match_without() {
        use ringfence_model::AddrTypes as T;
        let host = Locals::new(&ringfence_model::AddrSet::v4_prefix(
            std::net::Ipv4Addr::new(198, 18, 0, 1),
            32,
        ));
        let (holds, maybe) = addr_types(T::LOCAL, Fam::V4, Some(&host));
        assert!(maybe.is_empty());
        assert!(holds.contains(0xc612_0001) && holds.contains(0x7f00_0001));
        assert!(!holds.contains(0xc612_0002));
        // Negated: every other address, exactly.
        let (holds, maybe) = addr_types(T::ALL.0 & !T::LOCAL, Fam::V4, Some(&host));
        assert!(maybe.is_empty() && holds.contains(0xc612_0002) && !holds.contains(0xc612_0001));
        // Without the host's addresses, any address but loopback and
        // multicast may be local.
        let (holds, maybe) = addr_types(T::LOCAL, Fam::V4, None);
        assert!(holds.contains(0x7f00_0001) && maybe.contains(0xc612_0001));
        assert!(!maybe.contains(0xe000_0001));
        // UNICAST depends on routes the model does not know.
        let (_, maybe) = addr_types(T::UNICAST, Fam::V4, Some(&host));
        assert!(maybe.contains(0xc612_0002));
        let (holds, maybe) = addr_types(T::MULTICAST, Fam::V4, None);
        assert!(maybe.is_empty() && holds.contains(0xe000_0001));
    }

    #[test]
    fn interface_atoms_separate_exact_prefix_and_other_names() {
        let exact: BTreeSet<String> = ["eth0".to_string()].into();
        let prefixes: BTreeSet<String> = ["eth".to_string(), "veth".to_string()].into();
        let u = IfaceUniverse::from_patterns(&exact, &prefixes);
        // none, eth0, eth*, veth*, other
        assert_eq!(u.len(), 5);
        assert_eq!(u.atom_of(Some("eth0")), 1);
        assert_eq!(u.atom_of(Some("eth7")), u.atom_of(Some("ethrf0")));
        assert_ne!(u.atom_of(Some("veth1")), u.atom_of(Some("eth1")));
        assert_eq!(u.atom_of(None), 0);
        let set = IfaceSet::except(vec![IfacePattern::Prefix("eth".into())]);
        let atoms = u.atoms(&set);
        assert!(!atoms.contains(u.atom_of(Some("eth3"))));
        assert!(atoms.contains(u.atom_of(Some("wlan0"))));
    }
}
