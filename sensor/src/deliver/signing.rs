//! Standard Webhooks signing (<https://www.standardwebhooks.com>): the alert webhook and the
//! revocation webhook sign `{id}.{timestamp}.{body}` with HMAC-SHA256 under a `whsec_`
//! secret, so receivers can authenticate the sender and reject replays. The secret is
//! loaded from a file, kept in a zeroizing buffer and never printed.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Errors of loading a webhook secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not `whsec_` followed by base64.
    #[error("{0}")]
    Format(&'static str),
}

/// A Standard Webhooks signing secret.
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<hidden>)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Format("secret must start with `whsec_`"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Format("secret after `whsec_` is not base64"))?;
        if key.len() < 16 {
            return Err(SecretError::Format(
                "secret after `whsec_` must decode to at least 16 bytes",
            ));
        }
        Ok(WebhookSecret(Zeroizing::new(key)))
    }

    /// Reads and parses a secret file.
    pub fn load(path: &std::path::Path) -> Result<WebhookSecret, SecretError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::parse(&text)
    }

    /// The `webhook-signature` value `v1,<base64>` of a message.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// Whether `signatures` (the space-separated header) holds a valid `v1` signature of the
    /// message, and `timestamp` is within `tolerance_secs` of `now`.
    pub fn verify(
        &self,
        id: &str,
        timestamp: u64,
        body: &[u8],
        signatures: &str,
        now: u64,
        tolerance_secs: u64,
    ) -> bool {
        if now.abs_diff(timestamp) > tolerance_secs {
            return false;
        }
        let want = self.sign(id, timestamp, body);
        signatures.split(' ').any(|s| {
            s.len() == want.len()
                && s.bytes()
                    .zip(want.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }
}

/// The three Standard Webhooks headers for a message sent now.
pub fn headers(secret: &WebhookSecret, id: &str, body: &[u8]) -> [(&'static str, String); 3] {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", secret.sign(id, ts, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_published_test_vector() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(s.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bm90IGl0 {sig}"),
            1614265330 + 60,
            300
        ));
        // Outside the ±5 minute window, or another body: rejected.
        assert!(!s.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &sig,
            1614265330 + 301,
            300
        ));
        assert!(!s.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 1}"#,
            &sig,
            1614265330,
            300
        ));
    }

    #[test]
    fn malformed_secrets_are_rejected_without_echoing_them() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!notbase64",
            "whsec_c2hvcnQ=",
        ] {
            let e = WebhookSecret::parse(bad).unwrap_err().to_string();
            assert!(!e.contains(bad), "{e}");
        }
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{s:?}"), "WebhookSecret(<hidden>)");
    }
}
