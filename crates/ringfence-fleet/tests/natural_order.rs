//! The natural order used for check IDs and node names is a total order, so
//! sorting is stable and every report lists rows the same way.

use proptest::prelude::*;
use ringfence_fleet::natural::natural_cmp;
use std::cmp::Ordering;

fn id() -> impl Strategy<Value = String> {
    "[0-9a.-]{0,8}"
}

proptest! {
    #[test]
    fn equal_only_for_identical_strings(a in id(), b in id()) {
        prop_assert_eq!(natural_cmp(&a, &b) == Ordering::Equal, a == b);
    }

    #[test]
    fn antisymmetric(a in id(), b in id()) {
        prop_assert_eq!(natural_cmp(&a, &b), natural_cmp(&b, &a).reverse());
    }

    #[test]
    fn transitive(a in id(), b in id(), c in id()) {
        let le = |x: &str, y: &str| natural_cmp(x, y) != Ordering::Greater;
        // Whatever order the three come in, the sorted one must chain.
        for (x, y, z) in [(&a, &b, &c), (&a, &c, &b), (&b, &a, &c), (&b, &c, &a), (&c, &a, &b), (&c, &b, &a)] {
            if le(x, y) && le(y, z) {
                prop_assert!(le(x, z), "{x:?} <= {y:?} <= {z:?} but not {x:?} <= {z:?}");
            }
        }
    }

    #[test]
    fn numbers_compare_by_value(x in 0u64..100_000, y in 0u64..100_000) {
        let (a, b) = (format!("1.2.{x}"), format!("1.2.{y}"));
        prop_assert_eq!(natural_cmp(&a, &b), x.cmp(&y));
    }
}
