//! Value spellings that more than one input format reads the same way, kept
//! here once so the formats cannot drift apart.

/// A port or an inclusive port range written `FIRST<sep>LAST`: decimal
/// numbers 0-65535 with the first no larger than the last. `None` for
/// anything else (a half-open range, a name, a reversed range), which each
/// caller reports with its own location.
///
/// iptables' `--to-destination` and ipset elements write ranges with `-`,
/// `-m conntrack --ctorig*port` with `:`.
pub(crate) fn port_range(s: &str, sep: char) -> Option<(u16, u16)> {
    let (a, b) = s.split_once(sep).unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_one_port_or_an_ordered_pair_with_the_given_separator() {
        assert_eq!(port_range("80", '-'), Some((80, 80)));
        assert_eq!(port_range("0", ':'), Some((0, 0)));
        assert_eq!(port_range("1024-65535", '-'), Some((1024, 65535)));
        assert_eq!(port_range("1024:65535", ':'), Some((1024, 65535)));
        assert_eq!(port_range("53-53", '-'), Some((53, 53)));
        // Reversed, half-open, out of range, named, or the other separator.
        assert_eq!(port_range("90-80", '-'), None);
        assert_eq!(port_range("80-", '-'), None);
        assert_eq!(port_range(":80", ':'), None);
        assert_eq!(port_range("65536", '-'), None);
        assert_eq!(port_range("ssh", '-'), None);
        assert_eq!(port_range("80:90", '-'), None);
        assert_eq!(port_range("", '-'), None);
    }
}
