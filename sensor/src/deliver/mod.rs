//! Delivery: every alert is committed to the durable [`outbox`] before any output sees
//! it, then each configured output (sinks: stdout, file, syslog, http, webhook) delivers
//! it in its [`formats::Format`] from its own worker, acknowledging separately, with
//! backoff and ordering per output. Revocation jobs ride along in the same commit.

pub mod formats;
pub mod outbox;
pub mod pipeline;
pub mod record;
pub mod sealed;
pub mod signing;
pub mod sinks;
pub mod worker;

pub use pipeline::{
    DeliverError, Pipeline, PipelineConfig, PipelineHandle, RevocationMode, RevocationPolicy,
};
