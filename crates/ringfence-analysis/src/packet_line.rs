//! Packet lines: the JSON-lines input of batch `trace`, one packet a line:
//! `{"src", "dst", "proto", "sport", "dport", "iif", "oif", "from_host"}`
//! (`proto` a name or a number; ports default to 0; interfaces optional;
//! `"from_host": true` makes the packet start in OUTPUT), and optionally
//! the rarer header fields: `"tcp_flags"` (`"SYN"`, `"SYN,ACK"`, or the
//! flags byte as a number), `"icmp_type"` and `"icmp_code"` (numbers or
//! type names), `"length"` (bytes), `"dscp"` (0-63 or a class such as
//! `"af41"`), `"pkttype"` (`"unicast"`, `"broadcast"`, `"multicast"`,
//! `"otherhost"`) and `"mac_src"` (`"00:11:22:33:44:55"`). A packet is the
//! opening packet of a connection: without `tcp_flags` a TCP packet is a
//! SYN, without `icmp_type` an ICMP packet an echo request, without
//! `pkttype` it is unicast (multicast or broadcast by its destination);
//! a rule testing its length, DS field or MAC when the line gives none may
//! or may not match (two branches).
//!
//! Lines of the plain shape every generator writes are read without serde
//! (batch tracing reads millions); anything else goes through serde_json,
//! which decides exactly as before and words the error.

use ringfence_model::{proto, CtStates, Packet};
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;

/// A packet line that cannot be read: where (a 1-based column when known)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based column, or `None` when the whole line is at fault.
    pub column: Option<u64>,
    /// What is wrong, with what was expected.
    pub message: String,
}

impl LineError {
    fn at(column: u64, message: impl Into<String>) -> Self {
        Self {
            column: Some(column),
            message: message.into(),
        }
    }

    fn line(message: impl Into<String>) -> Self {
        Self {
            column: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.column {
            Some(c) => write!(f, "column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for LineError {}

/// Protocol name or number.
pub fn parse_proto(s: &str) -> Option<u8> {
    // Case-insensitive names without a lowercased copy (batch calls this per packet).
    const NAMES: [(&str, u8); 6] = [
        ("tcp", proto::TCP),
        ("udp", proto::UDP),
        ("icmp", proto::ICMP),
        ("icmpv6", proto::ICMPV6),
        ("ipv6-icmp", proto::ICMPV6),
        ("sctp", proto::SCTP),
    ];
    NAMES
        .iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|&(_, n)| n)
        .or_else(|| s.parse().ok())
}

/// `"proto"`: a name or a number. A hand-written visitor: serde's untagged
/// enums buffer the value first, which costs a third of batch throughput.
enum ProtoField<'a> {
    Num(u8),
    Name(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ProtoField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ProtoField<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a protocol name or a number 0-255")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u8::try_from(v)
                    .map(ProtoField::Num)
                    .map_err(|_| E::custom(format!("protocol number {v} is above 255")))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(ProtoField::Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ProtoField::Name(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct PacketLine<'a> {
    #[serde(borrow)]
    src: Cow<'a, str>,
    #[serde(borrow)]
    dst: Cow<'a, str>,
    #[serde(borrow)]
    proto: ProtoField<'a>,
    #[serde(default)]
    sport: u16,
    #[serde(default)]
    dport: u16,
    #[serde(borrow, default)]
    iif: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    oif: Option<Cow<'a, str>>,
    #[serde(default)]
    from_host: Option<bool>,
    #[serde(default)]
    tcp_flags: Option<Word>,
    #[serde(default)]
    icmp_type: Option<Word>,
    #[serde(default)]
    icmp_code: Option<u8>,
    #[serde(default)]
    length: Option<u32>,
    #[serde(default)]
    dscp: Option<Word>,
    #[serde(default)]
    pkttype: Option<String>,
    #[serde(default)]
    mac_src: Option<String>,
}

/// A field given as a number or a name.
#[derive(Deserialize)]
#[serde(untagged)]
enum Word {
    Num(u64),
    Name(String),
}

/// The rarer fields of a line (all `None` on the quick path).
#[derive(Default)]
struct Rare {
    tcp_flags: Option<u8>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    length: Option<u32>,
    tos: Option<u8>,
    pkttype: Option<u8>,
    mac_src: Option<u64>,
}

/// Read the rarer fields of a serde-read line, or say which is wrong.
fn rare(pl: &PacketLine<'_>, v6: bool) -> Result<Rare, LineError> {
    let bad =
        |key: &str, expected: &str| LineError::line(format!("\"{key}\": expected {expected}"));
    let num8 = |w: &Word| match w {
        Word::Num(n) => u8::try_from(*n).ok(),
        Word::Name(_) => None,
    };
    let tcp_flags = match &pl.tcp_flags {
        None => None,
        Some(Word::Name(n)) => Some(ringfence_model::names::tcp_flag_list(n).ok_or_else(|| {
            bad(
                "tcp_flags",
                "flag names such as \"SYN,ACK\" or a number 0-255",
            )
        })?),
        Some(w) => Some(num8(w).ok_or_else(|| bad("tcp_flags", "a number 0-255 or flag names"))?),
    };
    let icmp_type = match &pl.icmp_type {
        None => None,
        Some(Word::Name(n)) => Some(
            ringfence_model::names::icmp_name(n, v6)
                .map(|(t, _)| t)
                .ok_or_else(|| {
                    bad(
                        "icmp_type",
                        "a type name such as echo-request or a number 0-255",
                    )
                })?,
        ),
        Some(w) => Some(num8(w).ok_or_else(|| bad("icmp_type", "a number 0-255 or a type name"))?),
    };
    let tos = match &pl.dscp {
        None => None,
        Some(Word::Name(n)) => Some(
            ringfence_model::names::dscp_class(n)
                .ok_or_else(|| bad("dscp", "a number 0-63 or a class such as af41, cs1, ef"))?
                << 2,
        ),
        Some(w) => Some(
            num8(w)
                .filter(|d| *d <= 63)
                .ok_or_else(|| bad("dscp", "a number 0-63 or a class such as af41"))?
                << 2,
        ),
    };
    let pkttype = match &pl.pkttype {
        None => None,
        Some(n) => Some(
            ringfence_model::names::pkttype_name(n)
                .ok_or_else(|| bad("pkttype", "unicast, broadcast, multicast or otherhost"))?,
        ),
    };
    let mac_src = match &pl.mac_src {
        None => None,
        Some(m) => Some(
            ringfence_model::names::mac(m)
                .ok_or_else(|| bad("mac_src", "a MAC address such as \"00:11:22:33:44:55\""))?,
        ),
    };
    Ok(Rare {
        tcp_flags,
        icmp_type,
        icmp_code: pl.icmp_code,
        length: pl.length,
        tos,
        pkttype,
        mac_src,
    })
}

/// A packet line's fields, borrowed from the line.
struct LineFields<'a> {
    src: Addr<'a>,
    dst: Addr<'a>,
    proto: ProtoField<'a>,
    sport: u16,
    dport: u16,
    iif: Option<Cow<'a, str>>,
    oif: Option<Cow<'a, str>>,
    /// The packet starts in OUTPUT (it comes from the host itself).
    from_host: bool,
}

/// An address field: read as a plain dotted quad while the line was
/// scanned, or the text, for the standard parser.
enum Addr<'a> {
    V4(u32),
    Text(Cow<'a, str>),
}

impl Addr<'_> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Addr::V4(a) => Cow::Owned(std::net::Ipv4Addr::from(*a).to_string()),
            Addr::Text(t) => Cow::Borrowed(t),
        }
    }
}

/// Bytes that end a plain JSON string here: the closing quote, an escape,
/// or a control character (which JSON forbids unescaped).
const STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The end (the index of the closing quote) of a plain string whose first
/// byte is at `i`; `None` for an escape, a control character or no end.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(&c) = b.get(i) {
        if STOPS[usize::from(c)] {
            return (c == b'"').then_some(i);
        }
        i += 1;
    }
    None
}

/// A plain dotted quad (`0`-`255`, no leading zeros) filling all of `b`.
#[inline]
fn dotted_quad(b: &[u8]) -> Option<u32> {
    quad_at(b, 0).and_then(|(v, end)| (end == b.len()).then_some(v))
}

/// A plain dotted quad starting at `b[i]`, read up to the first byte that
/// cannot continue it: its value and that byte's index (the caller checks
/// what ends it).
#[inline]
fn quad_at(b: &[u8], mut i: usize) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for k in 0..4 {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut o: u32 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() || i - start == 3 {
                break;
            }
            o = o * 10 + u32::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b[start] == b'0') || o > 255 {
            return None;
        }
        v = v << 8 | o;
    }
    Some((v, i))
}

/// Read a packet line of the plain shape every generator writes (one
/// object, known keys once each, strings without escapes, unsigned
/// integers) without serde, in one pass over its bytes. Anything else,
/// valid or not, returns `None` and goes through serde_json, which then
/// decides exactly as before (and words the error).
fn quick_fields(line: &str) -> Option<LineFields<'_>> {
    let b = line.as_bytes();
    let mut i = 0;
    #[inline]
    fn ws(b: &[u8], i: &mut usize) {
        while b
            .get(*i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *i += 1;
        }
    }
    // A plain string at `i` (its opening quote): its contents; `i` after it.
    let string = |i: &mut usize| -> Option<&str> {
        if b.get(*i) != Some(&b'"') {
            return None;
        }
        let end = string_end(b, *i + 1)?;
        let s = &line[*i + 1..end];
        *i = end + 1;
        Some(s)
    };
    // An unsigned JSON integer up to `max`; no sign, fraction, exponent or leading zero.
    let number = |i: &mut usize, max: u32| -> Option<u32> {
        let start = *i;
        let mut v: u32 = 0;
        while let Some(d) = b.get(*i).filter(|c| c.is_ascii_digit()) {
            if *i - start == 6 {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
            *i += 1;
        }
        let digits = *i - start;
        let bad_next = b.get(*i).is_some_and(|c| matches!(c, b'.' | b'e' | b'E'));
        (digits > 0 && !(digits > 1 && b[start] == b'0') && !bad_next && v <= max).then_some(v)
    };
    // An address string at `i`: a plain dotted quad read in place, or
    // anything else as text for the standard parser.
    let addr = |i: &mut usize| -> Option<Addr<'_>> {
        if b.get(*i) != Some(&b'"') {
            return None;
        }
        if let Some((v, end)) = quad_at(b, *i + 1) {
            if b.get(end) == Some(&b'"') {
                *i = end + 1;
                return Some(Addr::V4(v));
            }
        }
        Some(Addr::Text(Cow::Borrowed(string(i)?)))
    };
    let mut f = LineFields {
        src: Addr::V4(0),
        dst: Addr::V4(0),
        proto: ProtoField::Num(0),
        sport: 0,
        dport: 0,
        iif: None,
        oif: None,
        from_host: false,
    };
    let mut seen = 0u8;
    ws(b, &mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        ws(b, &mut i);
        // The known keys, told apart by their first letter and checked
        // whole (with both quotes); any other key goes to serde.
        let rest = &b[i..];
        let key: &[u8] = match rest.get(1)? {
            b's' if rest.starts_with(b"\"src\"") => b"src",
            b's' if rest.starts_with(b"\"sport\"") => b"sport",
            b'd' if rest.starts_with(b"\"dst\"") => b"dst",
            b'd' if rest.starts_with(b"\"dport\"") => b"dport",
            b'p' if rest.starts_with(b"\"proto\"") => b"proto",
            b'i' if rest.starts_with(b"\"iif\"") => b"iif",
            b'o' if rest.starts_with(b"\"oif\"") => b"oif",
            b'f' if rest.starts_with(b"\"from_host\"") => b"from_host",
            _ => return None,
        };
        i += key.len() + 2;
        ws(b, &mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(b, &mut i);
        let bit = match key {
            b"src" => {
                f.src = addr(&mut i)?;
                1
            }
            b"dst" => {
                f.dst = addr(&mut i)?;
                2
            }
            b"proto" => {
                let rest = &b[i..];
                f.proto = if rest.starts_with(b"\"tcp\"") {
                    i += 5;
                    ProtoField::Num(proto::TCP)
                } else if rest.starts_with(b"\"udp\"") {
                    i += 5;
                    ProtoField::Num(proto::UDP)
                } else if rest.first() == Some(&b'"') {
                    ProtoField::Name(Cow::Borrowed(string(&mut i)?))
                } else {
                    ProtoField::Num(number(&mut i, 255)? as u8)
                };
                4
            }
            b"sport" => {
                f.sport = number(&mut i, 65535)? as u16;
                8
            }
            b"dport" => {
                f.dport = number(&mut i, 65535)? as u16;
                16
            }
            b"iif" => {
                f.iif = Some(Cow::Borrowed(string(&mut i)?));
                32
            }
            b"oif" => {
                f.oif = Some(Cow::Borrowed(string(&mut i)?));
                64
            }
            _ => {
                f.from_host = if b[i..].starts_with(b"true") {
                    i += 4;
                    true
                } else if b[i..].starts_with(b"false") {
                    i += 5;
                    false
                } else {
                    return None;
                };
                128
            }
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        ws(b, &mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    ws(b, &mut i);
    (i == b.len() && seen & 7 == 7).then_some(f)
}

/// The message of a line serde_json cannot read as a packet.
fn serde_message(e: &serde_json::Error) -> String {
    format!(
        "packet line: {e}; expected {{\"src\", \"dst\", \"proto\", \"sport\", \"dport\", \"iif\", \"oif\", \"from_host\"}} and optionally \"tcp_flags\", \"icmp_type\", \"icmp_code\", \"length\", \"dscp\", \"pkttype\", \"mac_src\""
    )
}

/// Read one packet line into `out` (reusing its interface strings'
/// buffers); returns whether the packet starts in OUTPUT (`"from_host":
/// true`). The packet opens a new connection. Lines of the plain shape are
/// read without serde; any other goes through [`read_serde`], so both give
/// the same packet, or the same error, for every line.
pub fn read(line: &str, out: &mut Packet) -> Result<bool, LineError> {
    match quick_fields(line) {
        Some(f) => fill(line, f, None, out),
        None => read_serde(line, out),
    }
}

/// Read one packet line with serde_json only (the reading every line had
/// before the quick reader; [`read`] defers to it for anything unusual and
/// tests hold the two against each other).
pub fn read_serde(line: &str, out: &mut Packet) -> Result<bool, LineError> {
    let pl: PacketLine = serde_json::from_str(line)
        .map_err(|e| LineError::at(e.column() as u64, serde_message(&e)))?;
    let fields = LineFields {
        src: Addr::Text(pl.src.clone()),
        dst: Addr::Text(pl.dst.clone()),
        proto: match &pl.proto {
            ProtoField::Num(n) => ProtoField::Num(*n),
            ProtoField::Name(n) => ProtoField::Name(n.clone()),
        },
        sport: pl.sport,
        dport: pl.dport,
        iif: pl.iif.clone(),
        oif: pl.oif.clone(),
        from_host: pl.from_host.unwrap_or(false),
    };
    fill(line, fields, Some(&pl), out)
}

/// Fill `out` from a line's fields (`rare_of`: the serde reading, for the
/// rarer fields).
fn fill(
    line: &str,
    pl: LineFields<'_>,
    rare_of: Option<&PacketLine<'_>>,
    out: &mut Packet,
) -> Result<bool, LineError> {
    let addr = |a: &Addr<'_>, what: &str| -> Result<IpAddr, LineError> {
        let s = match a {
            Addr::V4(v) => return Ok(IpAddr::from(std::net::Ipv4Addr::from(*v))),
            Addr::Text(s) => s,
        };
        if let Some(v) = dotted_quad(s.as_bytes()) {
            return Ok(IpAddr::from(std::net::Ipv4Addr::from(v)));
        }
        s.parse().map_err(|_| {
            LineError::at(
                line.find(&**s).map(|c| c as u64 + 1).unwrap_or(1),
                format!("\"{what}\": `{}` is not an IP address", a.text()),
            )
        })
    };
    let src = addr(&pl.src, "src")?;
    let dst = addr(&pl.dst, "dst")?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(LineError::line(
            "\"src\" and \"dst\" are of different address families: expected both IPv4 or both IPv6",
        ));
    }
    let protocol = match pl.proto {
        ProtoField::Num(n) => n,
        ProtoField::Name(n) => parse_proto(&n).ok_or_else(|| {
            LineError::at(
                line.find("\"proto\"").map(|c| c as u64 + 1).unwrap_or(1),
                format!("\"proto\": `{n}`: expected tcp, udp, icmp, icmpv6, sctp or a number"),
            )
        })?,
    };
    out.src = src;
    out.dst = dst;
    out.protocol = protocol;
    out.sport = pl.sport;
    out.dport = pl.dport;
    out.ct_state = CtStates::NEW;
    let r = match rare_of {
        Some(pl) => rare(pl, dst.is_ipv6())?,
        None => Rare::default(),
    };
    out.tcp_flags = r.tcp_flags;
    out.icmp_type = r.icmp_type;
    out.icmp_code = r.icmp_code;
    out.length = r.length;
    out.tos = r.tos;
    out.pkttype = r.pkttype;
    out.mac_src = r.mac_src;
    out.fill_defaults();
    // Reuse the interface strings' buffers from the previous packet.
    for (slot, v) in [(&mut out.iif, pl.iif), (&mut out.oif, pl.oif)] {
        match (slot.as_mut(), v) {
            (Some(s), Some(v)) => {
                s.clear();
                s.push_str(&v);
            }
            (None, Some(v)) => *slot = Some(v.into_owned()),
            (_, None) => *slot = None,
        }
    }
    Ok(pl.from_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde reading of a line, as (src, dst, proto, sport, dport, iif, oif).
    type Fields = (
        String,
        String,
        String,
        u16,
        u16,
        Option<String>,
        Option<String>,
        bool,
    );

    fn fields(f: LineFields<'_>) -> Fields {
        let proto = match f.proto {
            ProtoField::Num(n) => format!("#{n}"),
            ProtoField::Name(n) => match parse_proto(&n) {
                Some(n) => format!("#{n}"),
                None => n.into_owned(),
            },
        };
        (
            f.src.text().into_owned(),
            f.dst.text().into_owned(),
            proto,
            f.sport,
            f.dport,
            f.iif.map(Cow::into_owned),
            f.oif.map(Cow::into_owned),
            f.from_host,
        )
    }

    fn serde_fields(line: &str) -> Option<Fields> {
        let pl: PacketLine = serde_json::from_str(line).ok()?;
        Some(fields(LineFields {
            src: Addr::Text(pl.src),
            dst: Addr::Text(pl.dst),
            proto: pl.proto,
            sport: pl.sport,
            dport: pl.dport,
            iif: pl.iif,
            oif: pl.oif,
            from_host: pl.from_host.unwrap_or(false),
        }))
    }

    #[test]
    fn quick_line_reader_agrees_with_serde_or_defers_to_it() {
        let lines = [
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","sport":5000,"dport":443,"iif":"eth0","oif":"eth1"}"#,
            r#" { "dport" : 0 , "proto":6,"dst":"::1","src":"::2" } "#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":255,"sport":65535}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"udp","from_host":true}"#,
            // Valid JSON the quick reader leaves to serde.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"udp","from_host":null}"#,
            // Invalid: serde must see them to word the error.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"udp","from_host":"yes"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"udp","from_host":truex}"#,
            // Valid JSON the quick reader leaves to serde.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","iif":null}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","extra":[1,2]}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.\u0031","proto":"tcp"}"#,
            // Invalid: serde must see them to word the error.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":65536}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":256}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":080}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":80.0}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":-1}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","src":"10.0.0.1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp"} x"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp",}"#,
            "{\"src\":\"10.1.1.1\t\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}",
            r#"{}"#,
            r#"[]"#,
        ];
        let mut quick = 0;
        for line in lines {
            if let Some(f) = quick_fields(line) {
                quick += 1;
                assert_eq!(Some(fields(f)), serde_fields(line), "{line}");
            }
        }
        assert_eq!(quick, 4, "the four plain lines take the quick path");
    }

    #[test]
    fn the_quick_reader_gives_serdes_packet_or_serdes_located_error_for_every_line() {
        let lines = [
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","sport":5000,"dport":443,"iif":"eth0","oif":"eth1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"UDP","dport":53,"from_host":true}"#,
            r#"{"proto":"icmp","dst":"192.0.2.1","src":"10.1.1.1"}"#,
            r#"{"src":"2001:db8::1","dst":"2001:db8::2","proto":"icmpv6"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":47,"oif":"veth0"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"Tcp"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","tcp_flags":"SYN,ACK","dscp":"af41"}"#,
            // Malformed, on the quick path or off it: the same column and words.
            r#"{"src":"10.1.1.300","dst":"192.0.2.1","proto":"tcp"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.01","proto":"tcp"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1.","proto":"tcp"}"#,
            r#"{"src":"10.1.1.1","dst":"::1","proto":"tcp"}"#,
            r#"{"src":"","dst":"192.0.2.1","proto":"tcp"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcpx"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":999}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","sport":1234567}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":65536}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":"80"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":08}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":8e1}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dst":"192.0.2.2"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","iif":3}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","from_host":1}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dscp":64}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","unknown":{"x":[1]}}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp"}}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp""#,
            r#"{"src":"10.1.1.1\u0030","dst":"192.0.2.1","proto":"tcp"}"#,
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"iif\":\"et\th0\"}",
            r#"[1,2]"#,
            r#"nonsense"#,
        ];
        let fresh = || {
            Packet::new_connection(
                IpAddr::from([0, 0, 0, 0]),
                IpAddr::from([0, 0, 0, 0]),
                0,
                0,
                0,
            )
        };
        let mut errors = 0;
        for line in lines {
            let (mut a, mut b) = (fresh(), fresh());
            let quick = read(line, &mut a);
            let slow = read_serde(line, &mut b);
            assert_eq!(quick, slow, "{line}");
            if quick.is_ok() {
                assert_eq!(a, b, "{line}");
            } else {
                errors += 1;
            }
        }
        assert_eq!(errors, 22, "every malformed line is refused");
    }

    #[test]
    fn dotted_quads_are_read_only_where_the_standard_parser_reads_them_alike() {
        let samples = [
            "0.0.0.0",
            "10.1.1.1",
            "255.255.255.255",
            "256.1.1.1",
            "01.1.1.1",
            "1.1.1",
            "1.1.1.1.1",
            "1..1.1",
            "1.1.1.1 ",
            "",
            "1.1.1.0001",
            "a.b.c.d",
            "::1",
            "1.2.3.04",
            "100.200.250.199",
        ];
        for s in samples {
            if let Some(v) = dotted_quad(s.as_bytes()) {
                let a = IpAddr::from(std::net::Ipv4Addr::from(v));
                assert_eq!(Some(a), s.parse::<IpAddr>().ok(), "{s}");
            }
        }
        for a in [0u32, 1, 0x0a00_0001, 0xc000_0201, 0xffff_ffff, 0x7f00_0001] {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a));
            assert_eq!(dotted_quad(ip.to_string().as_bytes()), Some(a));
        }
    }

    #[test]
    fn protocol_names_are_case_insensitive_and_numbers_pass_through() {
        for (s, want) in [
            ("tcp", Some(6)),
            ("TCP", Some(6)),
            ("Udp", Some(17)),
            ("ICMP", Some(1)),
            ("icmpV6", Some(58)),
            ("IPv6-ICMP", Some(58)),
            ("sctp", Some(132)),
            ("47", Some(47)),
            ("255", Some(255)),
            ("256", None),
            ("tcpx", None),
            ("", None),
        ] {
            assert_eq!(parse_proto(s), want, "{s}");
        }
    }
}
