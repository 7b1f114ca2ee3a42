//! Rendezvous (highest-random-weight) hashing: which live member owns an entity.
//!
//! Every member scores every entity key with a hash of (member id, key); the highest score
//! owns it. When a member leaves, only its entities move (each to its next-highest scorer);
//! when one joins, it takes about 1/n of the entities from the others. No coordination: every
//! node computes the same answer from the same member set.
//!
//! The hash must be identical on every node and across versions (a rolling upgrade runs two),
//! so it is spelled out here (FNV-1a, then the SplitMix64 finaliser for avalanche) rather than
//! taken from `std`, whose hasher may change between Rust releases.

/// 64-bit FNV-1a over `bytes`, continuing from `state`.
fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        state ^= u64::from(*byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The score of `member` for `key`.
pub fn score(member: &str, key: &str) -> u64 {
    let state = fnv1a(0xcbf2_9ce4_8422_2325, member.as_bytes());
    // A separator byte that cannot appear in ids, so ("ab","c") and ("a","bc") differ.
    let state = fnv1a(state, &[0xff]);
    finalize(fnv1a(state, key.as_bytes()))
}

/// The owner of `key` among `members` (ids), or `None` when there are none. Ties (astronomically
/// unlikely) go to the smaller id, so the answer never depends on the order of `members`.
pub fn owner<'a, I>(key: &str, members: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    members
        .into_iter()
        .map(|member| (score(member, key), member))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, member)| member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("button/B{i:05}")).collect()
    }

    #[test]
    fn the_answer_does_not_depend_on_member_order() {
        for key in keys(200) {
            assert_eq!(
                owner(&key, ["n1", "n2", "n3"]),
                owner(&key, ["n3", "n1", "n2"])
            );
        }
        assert_eq!(owner("x", std::iter::empty::<&str>()), None);
    }

    #[test]
    fn the_hash_is_pinned() {
        // Every node, every version, must agree: a change here reshuffles every cluster.
        assert_eq!(score("n1", "button/B01"), score("n1", "button/B01"));
        // Computed independently (Python) from the definition above.
        assert_eq!(
            format!("{:016x}", score("n1", "button/B01")),
            "8aab8387039b1f93"
        );
    }

    #[test]
    fn load_is_spread_and_a_leaving_member_moves_only_its_share() {
        let keys = keys(3000);
        let before: HashMap<&String, &str> = keys
            .iter()
            .map(|k| (k, owner(k, ["n1", "n2", "n3"]).unwrap()))
            .collect();
        for member in ["n1", "n2", "n3"] {
            let share = before.values().filter(|m| **m == member).count();
            assert!(
                (800..1200).contains(&share),
                "{member} owns {share} of 3000"
            );
        }
        for key in &keys {
            let after = owner(key, ["n1", "n3"]).unwrap();
            if before[key] != "n2" {
                assert_eq!(after, before[key], "{key} moved though its owner stayed");
            }
        }
    }
}
