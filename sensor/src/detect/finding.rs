//! What a scan reports: a [`Finding`] (rule, validation, where and how encoded, redacted
//! forms and a keyed fingerprint — never the value). Shared by the rule engine and the
//! learned-secret matcher, which both produce findings.

use serde::Serialize;

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

/// A secret found in bytes. Holds no raw value.
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
}
