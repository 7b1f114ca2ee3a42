//! The signature on every body exchanged with an agency, both ways:
//!
//! ```text
//! X-Centinela-Signature: sha256=<lowercase hex of HMAC-SHA256(hmac_key, body)>
//! ```
//!
//! HMAC (RFC 2104) is written here over `sha2`'s SHA-256 rather than taken from a crate: it is
//! a dozen lines, and the tests pin it to RFC 4231's test vectors.

use sha2::{Digest, Sha256};

/// The header carrying the signature.
pub const HEADER: &str = "x-centinela-signature";
/// The prefix naming the scheme.
pub const PREFIX: &str = "sha256=";

const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header value for `body`: `sha256=<hex>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    format!("{PREFIX}{}", hex(&hmac_sha256(key, body)))
}

/// Whether `header` is the signature of `body` under `key`, compared in constant time.
pub fn verify(key: &[u8], body: &[u8], header: &str) -> bool {
    let expected = sign(key, body);
    let header = header.trim();
    if header.len() != expected.len() {
        return false;
    }
    let difference = header
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 §4.2, §4.3, §4.7 (a key longer than the block).
    #[test]
    fn matches_rfc_4231() {
        let cases = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hmac_sha256(&key, &data).to_vec(), unhex(expected));
        }
    }

    #[test]
    fn verifies_its_own_signature_and_nothing_else() {
        let header = sign(b"k", b"body");
        assert!(header.starts_with("sha256="));
        assert!(verify(b"k", b"body", &header));
        assert!(verify(
            b"k",
            b"body",
            &header.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify(b"k", b"body!", &header));
        assert!(!verify(b"other", b"body", &header));
        assert!(!verify(b"k", b"body", "sha256=00"));
        assert!(!verify(b"k", b"body", ""));
    }
}
