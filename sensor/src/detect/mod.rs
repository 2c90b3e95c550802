//! Token detection: rules as data, checksum validators, a prefiltered matcher with encoding
//! awareness, exact matching of secrets learned from the workspace, streaming across
//! writes, and harvesting of secrets from environments and credential files.

pub mod anchor;
pub mod check;
pub mod context;
pub mod engine;
pub mod finding;
pub mod gitleaks;
pub mod harvest;
pub mod import;
pub mod learned;
pub mod pattern;
pub mod prefilter;
pub mod rules;
pub mod stream;
pub mod validators;

pub use engine::{Encoding, Engine, Finding, ScanOptions};
pub use learned::{LearnedSecrets, SecretMeta};
pub use stream::StreamScanner;

#[cfg(test)]
mod tests;
