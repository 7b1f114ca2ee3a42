//! Key ranges: etcd addresses a prefix as the half-open range `[prefix, prefix_end(prefix))`.

/// The smallest key greater than every key that starts with `prefix`: the `range_end` that makes
/// etcd's `[key, range_end)` mean "all keys with this prefix".
///
/// Drops trailing `0xff` bytes and increments the last remaining byte (`"a/" -> "a0"`,
/// `"a\xff" -> "b"`). When no such key exists (empty prefix, or only `0xff` bytes), returns
/// `[0]`, etcd's convention for "no upper bound".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/centinela/"), b"/centinela0".to_vec());
        assert_eq!(prefix_end(b"a"), b"b".to_vec());
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff\xff"), b"b".to_vec());
    }

    #[test]
    fn prefix_end_without_successor_is_unbounded() {
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
