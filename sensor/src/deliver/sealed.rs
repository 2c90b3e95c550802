//! At-rest protection of the only secret the daemon keeps: the raw token a pending
//! revocation needs. A 32-byte master key lives in `state_dir/revocation.key` (mode 0600,
//! created once); from it, HMAC-SHA256 derives an XChaCha20-Poly1305 key that seals each
//! token (random 24-byte nonce, the job id as associated data) and a key for job ids — a
//! keyed fingerprint that is stable across restarts whatever `fingerprint_key` is, so a
//! token is never revoked twice.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Errors of the key file or of opening a sealed token.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be created or read.
    #[error("revocation key {path}: {source}")]
    Key {
        /// The key file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 32 bytes.
    #[error("revocation key {0}: must hold exactly 32 bytes")]
    KeyLength(String),
    /// A sealed token failed authentication (wrong key or tampered database).
    #[error("a sealed token failed authentication")]
    Open,
}

/// Seals and opens tokens; derives job ids.
pub struct Sealer {
    aead: XChaCha20Poly1305,
    id_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

fn derive(master: &[u8], label: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("any key length");
    m.update(label);
    Zeroizing::new(m.finalize().into_bytes().to_vec())
}

impl Sealer {
    /// Loads `dir/revocation.key`, creating it (0600, 32 random bytes) on first use.
    pub fn open_dir(dir: &Path) -> Result<Sealer, SealError> {
        let path = dir.join("revocation.key");
        let err = |source| SealError::Key {
            path: path.display().to_string(),
            source,
        };
        let master = match std::fs::read(&path) {
            Ok(k) => Zeroizing::new(k),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = Zeroizing::new(crate::redact::random_bytes(32));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(err)?;
                f.write_all(&k).map_err(err)?;
                f.sync_all().map_err(err)?;
                k
            }
            Err(e) => return Err(err(e)),
        };
        if master.len() != 32 {
            return Err(SealError::KeyLength(path.display().to_string()));
        }
        Ok(Self::from_master(&master))
    }

    fn from_master(master: &[u8]) -> Sealer {
        let k = derive(master, b"token-sensor revocation seal v1");
        Sealer {
            aead: XChaCha20Poly1305::new_from_slice(&k).expect("32-byte key"),
            id_key: derive(master, b"token-sensor revocation id v1"),
        }
    }

    /// The job id of a token: `rv-` + 32 hex of a keyed MAC.
    pub fn job_id(&self, token: &[u8]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.id_key).expect("any key length");
        m.update(token);
        format!("rv-{}", hex::encode(&m.finalize().into_bytes()[..16]))
    }

    /// nonce ‖ ciphertext of `token`, bound to `job_id`.
    pub fn seal(&self, job_id: &str, token: &[u8]) -> Vec<u8> {
        let nonce_bytes = crate::redact::random_bytes(24);
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = self
            .aead
            .encrypt(
                nonce,
                Payload {
                    msg: token,
                    aad: job_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail");
        let mut out = nonce_bytes;
        out.extend_from_slice(&ct);
        out
    }

    /// The token sealed by [`Sealer::seal`] for `job_id`.
    pub fn open(&self, job_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < 24 + 16 {
            return Err(SealError::Open);
        }
        let (n, ct) = sealed.split_at(24);
        self.aead
            .decrypt(
                XNonce::from_slice(n),
                Payload {
                    msg: ct,
                    aad: job_id.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_round_trip_bound_to_the_job_and_key_file_is_private() {
        let dir = std::env::temp_dir().join(format!("sealer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Sealer::open_dir(&dir).unwrap();
        let mode = std::fs::metadata(dir.join("revocation.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let tok = b"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";
        let id = s.job_id(tok);
        let sealed = s.seal(&id, tok);
        assert!(!sealed.windows(8).any(|w| tok.windows(8).any(|t| t == w)));
        assert_eq!(&s.open(&id, &sealed).unwrap()[..], tok);
        assert!(matches!(s.open("rv-other", &sealed), Err(SealError::Open)));
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(s.open(&id, &bad).is_err());
        // The same key file after a restart: same ids, same plaintexts.
        let again = Sealer::open_dir(&dir).unwrap();
        assert_eq!(again.job_id(tok), id);
        assert_eq!(&again.open(&id, &sealed).unwrap()[..], tok);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
