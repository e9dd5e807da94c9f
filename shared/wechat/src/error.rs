//! Everything that can be wrong with a callback request, a key or a reply.
//!
//! Messages are short, say what is wrong in words a WeChat developer knows,
//! and never contain the token, the EncodingAESKey or message content: they
//! are safe to return in an HTTP body and to log.

/// A refused request, or a bad key, token or reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    /// The body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The POST had no body at all.
    #[error("empty request body")]
    EmptyBody,
    /// A query parameter WeChat always sends is missing.
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    /// `timestamp` is not a whole number.
    #[error("timestamp is not a whole number")]
    BadTimestamp,
    /// `timestamp` is too far from now (a replay or a wrong clock).
    #[error("stale timestamp: outside the allowed window")]
    StaleTimestamp,
    /// `signature` or `msg_signature` does not match.
    #[error("signature does not match")]
    BadSignature,
    /// The body (or the decrypted message) is not UTF-8.
    #[error("body is not valid utf-8")]
    NotUtf8,
    /// The XML is not well formed, or not WeChat's `<xml>` envelope.
    #[error("malformed xml: {0}")]
    MalformedXml(String),
    /// The XML carries a document type declaration. WeChat never sends
    /// one; refusing it rules out entity expansion of any kind.
    #[error("xml with a DTD is refused")]
    Dtd,
    /// A field every message has is missing.
    #[error("message xml lacks <{0}>")]
    MissingField(&'static str),
    /// A field has a value of the wrong shape.
    #[error("message xml field <{0}> is not valid")]
    BadField(&'static str),
    /// Safe mode is configured but the request is not encrypted.
    #[error("safe mode: the request must be encrypted (encrypt_type=aes and an Encrypt element)")]
    NotEncrypted,
    /// The request is encrypted but no EncodingAESKey is configured.
    #[error("encrypted request, but no EncodingAESKey is configured")]
    NoAesKey,
    /// `Encrypt` is not valid base64.
    #[error("Encrypt is not valid base64")]
    BadBase64,
    /// The ciphertext is not a whole number of AES blocks, or too short.
    #[error("encrypted payload has a bad length")]
    BadCiphertextLength,
    /// The decrypted padding is not PKCS#7 to WeChat's 32-byte blocks.
    #[error("bad padding in the decrypted payload")]
    BadPadding,
    /// The decrypted payload's length field points outside it.
    #[error("decrypted payload has an inconsistent length field")]
    BadLayout,
    /// The decrypted payload names another AppID than ours.
    #[error("the message is for another AppID")]
    WrongAppId,
    /// A configured token is not one WeChat accepts.
    #[error("a token must be 3 to 32 ASCII letters or digits")]
    InvalidToken,
    /// A configured EncodingAESKey is not 43 base64 characters.
    #[error("an EncodingAESKey must be 43 characters of base64 (letters, digits, + and /)")]
    InvalidAesKey,
}

impl WechatError {
    /// The HTTP status a webhook answers with: 413 for an oversized body,
    /// 403 for a request that fails authentication, 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            Self::BodyTooLarge { .. } => 413,
            Self::StaleTimestamp | Self::BadSignature => 403,
            Self::InvalidToken | Self::InvalidAesKey => 500,
            _ => 400,
        }
    }

    /// A short machine-readable reason, for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::EmptyBody => "empty_body",
            Self::MissingParameter(_) => "missing_parameter",
            Self::BadTimestamp => "bad_timestamp",
            Self::StaleTimestamp => "stale_timestamp",
            Self::BadSignature => "bad_signature",
            Self::NotUtf8 => "not_utf8",
            Self::MalformedXml(_) => "malformed_xml",
            Self::Dtd => "dtd",
            Self::MissingField(_) => "missing_field",
            Self::BadField(_) => "bad_field",
            Self::NotEncrypted => "not_encrypted",
            Self::NoAesKey => "no_aes_key",
            Self::BadBase64 => "bad_base64",
            Self::BadCiphertextLength => "bad_ciphertext_length",
            Self::BadPadding => "bad_padding",
            Self::BadLayout => "bad_layout",
            Self::WrongAppId => "wrong_app_id",
            Self::InvalidToken => "invalid_token",
            Self::InvalidAesKey => "invalid_aes_key",
        }
    }
}
