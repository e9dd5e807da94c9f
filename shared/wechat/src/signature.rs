//! WeChat's request and reply signatures: the SHA-1 (hex, lower case) of
//! the parts sorted as byte strings and concatenated.
//!
//! - URL verification and plaintext POSTs: `signature = sign(token, timestamp, nonce)`.
//! - Safe mode: `msg_signature = sign(token, timestamp, nonce, Encrypt)`,
//!   and the same over a reply's own `TimeStamp`, `Nonce` and `Encrypt`.
//!
//! Checks compare in constant time, so a forger learns nothing from how
//! long a wrong guess takes.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The signature of `parts`: sorted, concatenated, SHA-1, lower-case hex.
///
/// ```
/// // The timestamp/nonce/Encrypt of WeChat's published Python sample.
/// let sig = wca_wechat::signature::sign(&["spamtest", "1409735669", "1320562132"]);
/// assert_eq!(sig, "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a");
/// ```
pub fn sign(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize())
}

/// Whether `given` is the signature of `parts`, compared in constant time.
/// Upper-case hex is accepted; any other length or character is not.
pub fn verify(given: &str, parts: &[&str]) -> bool {
    let expected = sign(parts);
    let given = given.to_ascii_lowercase();
    // Lengths are public (always 40); only the content is compared in
    // constant time.
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from WeChat's published samples (../spec vectors).
    #[test]
    fn signatures_match_wechats_published_samples() {
        let table: &[(&[&str], &str)] = &[
            // C: official OA Python sample, GET-style signature.
            (
                &["spamtest", "1409735669", "1320562132"],
                "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a",
            ),
            // E: the open platform's worked example, URL signature.
            (
                &["AAAAA", "1715943329", "1590219412"],
                "cc0c594499c1634947d5b502f158ee518947db27",
            ),
            // W1: wechatpy's test suite.
            (
                &[
                    "123456",
                    "1411443780",
                    "437374425",
                    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
                ],
                "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
            ),
        ];
        for (parts, want) in table {
            assert_eq!(sign(parts), *want, "{parts:?}");
            assert!(verify(want, parts));
        }
    }

    #[test]
    fn verification_fails_for_a_changed_nonce_or_a_truncated_signature() {
        let parts = [
            "123456",
            "1411443780",
            "437374424",
            "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        ];
        assert!(!verify("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", &parts));
        let ok = ["spamtest", "1409735669", "1320562132"];
        assert!(!verify("16120ec1b8dbb870f510d87ce6bc2463eae6ca1", &ok));
        assert!(!verify("", &ok));
        assert!(verify("16120EC1B8DBB870F510D87CE6BC2463EAE6CA1A", &ok));
    }

    #[test]
    fn the_order_of_the_parts_does_not_matter() {
        assert_eq!(sign(&["b", "a", "c"]), sign(&["c", "b", "a"]));
    }
}
