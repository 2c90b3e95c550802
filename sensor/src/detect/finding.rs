//! What a scan reports: a [`Finding`] (rule, validation, where and how encoded, redacted
//! forms and a keyed fingerprint — never the value). Shared by the rule engine and the
//! learned-secret matcher, which both produce findings.

use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use super::rules::Severity;
use super::validators::Validation;

/// How the secret was found in the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// As is.
    Raw,
    /// Standard or URL-safe base64 (incl. HTTP Basic and docker `auth`).
    Base64,
    /// Percent-encoded.
    Percent,
    /// Hexadecimal.
    Hex,
    /// Inside a JSON string with escapes.
    JsonEscape,
}

/// The secret's decoded bytes, carried only so that a revocation can act on the token.
/// Never serialized, and its `Debug` shows only the length; zeroized when the last copy
/// is dropped.
#[derive(Clone)]
pub struct SecretValue(Arc<Zeroizing<Vec<u8>>>);

impl SecretValue {
    /// Copies `bytes` into a zeroizing buffer.
    pub fn new(bytes: &[u8]) -> SecretValue {
        SecretValue(Arc::new(Zeroizing::new(bytes.to_vec())))
    }

    /// The raw bytes (for a revocation request and its encrypted queue entry only).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue(<{} bytes>)", self.0.len())
    }
}

/// A secret found in bytes. Serializes without the raw value.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Rule id (or `learned:<source>` for learned secrets).
    pub detector: String,
    /// Rule name.
    pub name: String,
    pub provider: String,
    pub kind: String,
    pub severity: Severity,
    /// "high" for validated or learned values, "medium" for unvalidated formats, "low" for
    /// candidates that failed their checksum.
    pub confidence: &'static str,
    pub validation: Validation,
    pub encoding: Encoding,
    /// Offset of the (encoded) occurrence in the scanned stream.
    pub offset: u64,
    /// Length of the secret (decoded).
    pub length: usize,
    /// The public prefix (e.g. `ghp_`), safe to show.
    pub safe_prefix: String,
    /// Last four characters, only for formats where that is customary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    /// Keyed fingerprint of the secret.
    pub fingerprint: String,
    pub tags: Vec<String>,
    pub issuers: Vec<String>,
    pub revoke: String,
    /// Where the workspace held this exact value (`env:NAME`, `file:PATH`), when it was
    /// learned — also when a rule found it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_from: Option<String>,
    /// The value itself, for revocation (see [`SecretValue`]); never serialized.
    #[serde(skip)]
    pub secret: Option<SecretValue>,
}
