//! The Kubernetes version a component binary was built as.
//!
//! Kubernetes release builds stamp the version with the Go linker flag
//! `-X k8s.io/component-base/version.gitVersion=v1.22.9+vmware.1`, and Go
//! (1.18 and later) records the linker flags in the binary's build
//! information. Finding that marker is enough: no part of the binary runs.

use std::io::Read;

const MARKER: &[u8] = b"version.gitVersion=";
const CHUNK: usize = 1 << 20;
/// Never read more than this much of a file looking for the marker.
pub const SCAN_LIMIT: u64 = 512 << 20;

/// Scan `reader` for the version stamp and return it as `MAJOR.MINOR.PATCH`
/// (the form image tags give), or `None` when the binary has none.
pub fn version_from_binary(mut reader: impl Read) -> Option<String> {
    let mut window: Vec<u8> = Vec::with_capacity(CHUNK + 128);
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = reader.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        total += n as u64;
        window.extend_from_slice(&buf[..n]);
        if let Some(pos) = find(&window, MARKER) {
            let start = pos + MARKER.len();
            // The value may straddle the chunk boundary: read a little more.
            if window.len() < start + 64 {
                let mut more = vec![0u8; 64];
                if let Ok(m) = reader.read(&mut more) {
                    window.extend_from_slice(&more[..m]);
                }
            }
            return parse_version(&window[start..]);
        }
        if total >= SCAN_LIMIT {
            return None;
        }
        // Keep a tail long enough to hold a marker split across chunks.
        let keep = MARKER.len() - 1;
        let cut = window.len().saturating_sub(keep);
        window.drain(..cut);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `v1.22.9+vmware.1'...` → `1.22.9`.
fn parse_version(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"v").unwrap_or(bytes);
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(rest.len());
    let v = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim_end_matches('.');
    let parts: Vec<&str> = v.split('.').collect();
    (parts.len() >= 2 && parts.iter().all(|p| !p.is_empty())).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary_with(stamp: &[u8], at: usize) -> Vec<u8> {
        let mut b: Vec<u8> = (0..at).map(|i| (i % 251) as u8).collect();
        b.extend_from_slice(stamp);
        b.extend((0..1000).map(|i| (i % 7) as u8));
        b
    }

    #[test]
    fn finds_the_linker_stamp_in_go_build_info() {
        let stamp = b"build\t-ldflags=\"-X 'k8s.io/component-base/version.gitVersion=v1.22.9+vmware.1' -X 'k8s.io/component-base/version.gitCommit=abc'\"";
        assert_eq!(
            version_from_binary(&binary_with(stamp, 5000)[..]).as_deref(),
            Some("1.22.9")
        );
    }

    #[test]
    fn finds_a_stamp_split_across_read_chunks() {
        let stamp = b"k8s.io/component-base/version.gitVersion=v1.28.4";
        for offset in [CHUNK - 10, CHUNK - 19, CHUNK - 20, CHUNK - 25, CHUNK] {
            let bin = binary_with(stamp, offset);
            assert_eq!(
                version_from_binary(&bin[..]).as_deref(),
                Some("1.28.4"),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn a_binary_without_a_stamp_has_no_version() {
        assert_eq!(
            version_from_binary(&binary_with(b"nothing here", 3000)[..]),
            None
        );
        let bad = b"version.gitVersion=vX";
        assert_eq!(version_from_binary(&binary_with(bad, 10)[..]), None);
    }
}
