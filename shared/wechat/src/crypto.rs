//! Safe-mode crypto: AES-256-CBC as WeChat uses it, and the secret types.
//!
//! The key is the 43-character EncodingAESKey plus `=`, base64-decoded (32
//! bytes; most real keys have non-zero trailing bits, which a strict
//! decoder refuses). The IV is the key's first 16 bytes. The plaintext is
//! 16 random bytes, the message length as 4 big-endian bytes, the message,
//! then the AppID, PKCS#7-padded to 32-byte blocks: the pad byte runs from
//! 1 to 32, so a 16-byte PKCS#7 unpadder fails on WeChat's own messages
//! and we strip the padding here.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD};

use crate::WechatError;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to this block size, not AES's 16.
const PAD_BLOCK: usize = 32;

/// The decoder for EncodingAESKeys: standard alphabet, trailing bits allowed.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The Token from the WeChat console. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Checks the console's rule: 3 to 32 ASCII letters or digits.
    pub fn new(token: impl Into<String>) -> Result<Self, WechatError> {
        let token = token.into();
        let ok =
            (3..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(token))
        } else {
            Err(WechatError::InvalidToken)
        }
    }

    /// The token itself, for signing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A decoded EncodingAESKey. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey {
    key: [u8; 32],
    iv: [u8; 16],
}

impl AesKey {
    /// Parses the 43-character EncodingAESKey from the WeChat console.
    ///
    /// ```
    /// let key = wca_wechat::AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
    /// assert_eq!(format!("{key:?}"), "AesKey(<redacted>)");
    /// assert!(wca_wechat::AesKey::parse("too-short").is_err());
    /// ```
    pub fn parse(encoding_aes_key: &str) -> Result<Self, WechatError> {
        let text = encoding_aes_key.trim();
        if text.len() != 43 {
            return Err(WechatError::InvalidAesKey);
        }
        let mut padded = String::with_capacity(44);
        padded.push_str(text);
        padded.push('=');
        let bytes = KEY_B64
            .decode(padded)
            .map_err(|_| WechatError::InvalidAesKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| WechatError::InvalidAesKey)?;
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&key[..16]);
        Ok(Self { key, iv })
    }
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// Encrypts `message` for `app_id` with the given 16 random bytes, as the
/// base64 text of an `Encrypt` element.
pub fn encrypt(key: &AesKey, random: [u8; 16], message: &str, app_id: &str) -> String {
    let body_len = 16 + 4 + message.len() + app_id.len();
    let pad = PAD_BLOCK - body_len % PAD_BLOCK;
    let mut buf = Vec::with_capacity(body_len + pad);
    buf.extend_from_slice(&random);
    // WeChat caps messages far below 4 GiB; the body limit keeps us there.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(message.as_bytes());
    buf.extend_from_slice(app_id.as_bytes());
    // `pad` is 1..=32, so it fits a byte.
    buf.resize(body_len + pad, pad as u8);
    let total = buf.len();
    // The buffer is a whole number of blocks by construction, so the
    // no-padding encryption cannot fail; an empty result would show it did.
    let out = Encryptor::new((&key.key).into(), (&key.iv).into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, total)
        .unwrap_or_default();
    STANDARD.encode(out)
}

/// A decrypted payload: the message and the AppID (or WeCom CorpID) it
/// was sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The inner message (XML, or the echo string of a WeCom verification).
    pub message: String,
    /// The receiver id at the end of the payload.
    pub receiver_id: String,
}

/// Decrypts the base64 text of an `Encrypt` element without checking the
/// receiver id (see [`decrypt_for`]).
pub fn decrypt(key: &AesKey, encrypt_b64: &str) -> Result<Decrypted, WechatError> {
    let mut buf = STANDARD
        .decode(encrypt_b64.trim())
        .map_err(|_| WechatError::BadBase64)?;
    if buf.is_empty() || buf.len() % 16 != 0 || buf.len() < PAD_BLOCK {
        return Err(WechatError::BadCiphertextLength);
    }
    let plain = Decryptor::new((&key.key).into(), (&key.iv).into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| WechatError::BadCiphertextLength)?;
    let plain = unpad(plain)?;
    if plain.len() < 20 {
        return Err(WechatError::BadLayout);
    }
    let len_bytes: [u8; 4] = plain[16..20]
        .try_into()
        .map_err(|_| WechatError::BadLayout)?;
    let msg_len = u32::from_be_bytes(len_bytes) as usize;
    let rest = &plain[20..];
    if msg_len > rest.len() {
        return Err(WechatError::BadLayout);
    }
    let (message, receiver) = rest.split_at(msg_len);
    Ok(Decrypted {
        message: String::from_utf8(message.to_vec()).map_err(|_| WechatError::NotUtf8)?,
        receiver_id: String::from_utf8(receiver.to_vec()).map_err(|_| WechatError::WrongAppId)?,
    })
}

/// Decrypts and checks that the payload was sealed for `app_id`.
pub fn decrypt_for(key: &AesKey, encrypt_b64: &str, app_id: &str) -> Result<String, WechatError> {
    let d = decrypt(key, encrypt_b64)?;
    if d.receiver_id != app_id {
        return Err(WechatError::WrongAppId);
    }
    Ok(d.message)
}

/// Strips PKCS#7 padding to 32-byte blocks: the last byte `n` is 1..=32
/// and the last `n` bytes all equal it.
fn unpad(plain: &[u8]) -> Result<&[u8], WechatError> {
    let n = usize::from(*plain.last().ok_or(WechatError::BadPadding)?);
    if n == 0 || n > PAD_BLOCK || n > plain.len() {
        return Err(WechatError::BadPadding);
    }
    let (body, pad) = plain.split_at(plain.len() - n);
    if pad.iter().any(|&b| usize::from(b) != n) {
        return Err(WechatError::BadPadding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn key(k: &str) -> AesKey {
        AesKey::parse(k).expect("valid key")
    }

    fn random(s: &str) -> [u8; 16] {
        s.as_bytes().try_into().expect("16 bytes")
    }

    /// A1: WeChat's official Java sample (`WXBizMsgCryptTest`), fixed random.
    #[test]
    fn encryption_matches_the_official_java_sample_byte_for_byte() {
        let got = encrypt(
            &key(SAMPLE_KEY),
            random("aaaabbbbccccdddd"),
            "我是中文abcd123",
            "wxb11529c136998cb6",
        );
        assert_eq!(
            got,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(
            decrypt_for(&key(SAMPLE_KEY), &got, "wxb11529c136998cb6").expect("decrypt"),
            "我是中文abcd123"
        );
    }

    /// C: the official Official Account Python sample.
    #[test]
    fn decryption_matches_the_official_python_sample() {
        let encrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
        let want = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>";
        let got = decrypt_for(&key(SAMPLE_KEY), encrypt, "wx2c2769f8efd9abc2").expect("decrypt");
        assert_eq!(got, want);
        assert_eq!(encrypt_with_random_of(encrypt), "89465c840c5f116f");
        assert!(crate::signature::verify(
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            &["spamtest", "1409735669", "1320562132", encrypt]
        ));
    }

    fn encrypt_with_random_of(encrypt_b64: &str) -> String {
        let mut buf = STANDARD.decode(encrypt_b64).expect("b64");
        let k = key(SAMPLE_KEY);
        let cipher = Decryptor::new((&k.key).into(), (&k.iv).into());
        let plain = cipher
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .expect("blocks");
        String::from_utf8(plain[..16].to_vec()).expect("ascii random")
    }

    /// E: the open platform's worked example, whose key is `A`×43 (32 zero
    /// bytes) and whose inbound pad byte is 22: a 16-byte unpadder fails it.
    #[test]
    fn a_pad_longer_than_sixteen_bytes_is_stripped_as_wechat_pads_to_thirty_two() {
        let k = key(&"A".repeat(43));
        let encrypt = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";
        let got = decrypt_for(&k, encrypt, "wx134c8103faa5a59e").expect("decrypt");
        assert_eq!(got.len(), 292);
        assert!(got.contains("<Event><![CDATA[debug_demo]]></Event>"));

        // Its reply, re-encrypted with the published random and signed.
        let reply = super::encrypt(
            &k,
            random("999951349e8ee746"),
            "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>",
            "wx134c8103faa5a59e",
        );
        assert_eq!(
            reply,
            "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"
        );
        assert_eq!(
            crate::signature::sign(&["AAAAA", "1713424427", "415670741", &reply]),
            "03e0812039325c2712ef5f0f980fd14c70d6e307"
        );
    }

    /// Vectors from WeCom's samples and wechatpy's tests: same algorithm,
    /// receiver ids of other shapes, pads from 1 to 30.
    #[test]
    fn decryption_matches_wecom_and_wechatpy_vectors() {
        let table = [
            // B: WeCom VerifyURL.
            (
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
                "wx5823bf96d3bd56c7",
                "1616140317555161061",
            ),
            // F1: WeCom Python sample.
            (
                "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
                "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
                "ww1436e0e65a779aee",
                "1288432023552776189",
            ),
            // W1: wechatpy.
            (
                "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
                "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
                "wx49f0ab532d5d035a",
                "5927782489442352469",
            ),
        ];
        for (k, encrypt, receiver, want) in table {
            let d = decrypt(&key(k), encrypt).expect("decrypt");
            assert_eq!(d.message, want);
            assert_eq!(d.receiver_id, receiver);
        }
        // G: pad byte 30.
        let g = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
        let d = decrypt(&key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"), g).expect("decrypt G");
        assert!(
            d.message.contains("<Content><![CDATA[hello]]></Content>"),
            "{}",
            d.message
        );
        assert!(d.message.contains("4561255354251345929"));
    }

    /// W3: wechatpy's reply-encryption vector (random fixed by a mock).
    #[test]
    fn reply_encryption_matches_wechatpy() {
        let k = key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR");
        let msg = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let got = encrypt(&k, random("1234567890123456"), msg, "wx49f0ab532d5d035a");
        assert_eq!(
            got,
            "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
        );
        assert_eq!(
            crate::signature::sign(&["123456", "1411525903", "461056294", &got]),
            "407518b7649e86ef23978113f92d27afa9296533"
        );
    }

    #[test]
    fn a_wrong_app_id_is_refused() {
        let k = key(SAMPLE_KEY);
        let sealed = encrypt(&k, [3; 16], "<xml/>", "wxsomeoneelse");
        assert_eq!(
            decrypt_for(&k, &sealed, "wxours"),
            Err(WechatError::WrongAppId)
        );
    }

    #[test]
    fn bad_keys_are_refused_without_repeating_them() {
        for bad in [
            "",
            "short",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}!", "A".repeat(42)),
        ] {
            let err = AesKey::parse(bad).expect_err("bad key");
            assert_eq!(err, WechatError::InvalidAesKey);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad));
            }
        }
    }

    #[test]
    fn tokens_follow_the_consoles_rule_and_never_show_in_debug() {
        assert!(Token::new("ab").is_err());
        assert!(Token::new("a".repeat(33)).is_err());
        assert!(Token::new("has space").is_err());
        let t = Token::new("secretToken42").expect("valid");
        assert_eq!(t.expose(), "secretToken42");
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn garbage_ciphertexts_give_typed_errors() {
        let k = key(SAMPLE_KEY);
        assert_eq!(decrypt(&k, "not base64 !!"), Err(WechatError::BadBase64));
        assert_eq!(decrypt(&k, ""), Err(WechatError::BadCiphertextLength));
        assert_eq!(
            decrypt(&k, &STANDARD.encode([0u8; 17])),
            Err(WechatError::BadCiphertextLength)
        );
        assert_eq!(
            decrypt(&k, &STANDARD.encode([0u8; 16])),
            Err(WechatError::BadCiphertextLength)
        );
    }

    #[test]
    fn unpadding_refuses_zero_overlong_and_uneven_pads() {
        let mut block = [b'x'; 64];
        block[63] = 0;
        assert_eq!(unpad(&block), Err(WechatError::BadPadding));
        block[63] = 33;
        assert_eq!(unpad(&block), Err(WechatError::BadPadding));
        block[63] = 3;
        block[62] = 3;
        assert_eq!(
            unpad(&block),
            Err(WechatError::BadPadding),
            "one pad byte differs"
        );
        block[61] = 3;
        assert_eq!(unpad(&block).map(<[u8]>::len), Ok(61));
    }
}
