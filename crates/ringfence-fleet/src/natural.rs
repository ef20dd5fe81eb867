//! Natural ordering of check IDs and node names: runs of digits compare as
//! numbers, so `1.2.9` sorts before `1.2.10` and `node-2` before `node-10`.

use std::cmp::Ordering;

/// Compare two strings naturally. Digit runs compare by numeric value (any
/// length, no overflow); other text compares byte-wise. Strings that compare
/// equal that way (`01` and `1`) fall back to plain byte order, so the order
/// is total and stable.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&ab[si..i]);
            let nb = trim_zeros(&bb[sj..j]);
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = ab[i].cmp(&bb[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| ab.cmp(bb))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().take_while(|&&c| c == b'0').count();
    &d[k..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_sort_by_number_per_part() {
        let mut ids = vec![
            "1.2.10", "1.2.9", "1.10.1", "1.2.1", "4.2.6", "1.1.12", "1.1.2",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            ["1.1.2", "1.1.12", "1.2.1", "1.2.9", "1.2.10", "1.10.1", "4.2.6"]
        );
    }

    #[test]
    fn node_names_sort_by_embedded_numbers_and_order_is_total() {
        let mut n = vec!["node-10", "node-2", "node-02", "cp", "node-1a", "node-1"];
        n.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            n,
            ["cp", "node-1", "node-1a", "node-02", "node-2", "node-10"]
        );
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_ne!(natural_cmp("01", "1"), Ordering::Equal);
    }

    #[test]
    fn huge_digit_runs_do_not_overflow() {
        let a = format!("1.{}", "9".repeat(40));
        let b = format!("1.1{}", "0".repeat(40));
        assert_eq!(natural_cmp(&a, &b), Ordering::Less);
    }
}
