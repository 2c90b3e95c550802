//! The durable outbox: an embedded redb database in `state_dir`. An alert is committed
//! (fsync) before any output sees it; each output then has its own delivery row per alert,
//! read in order and removed when that output acknowledges, so outputs progress
//! independently and a crash at any point loses nothing (at-least-once; the alert id
//! deduplicates). Stored alert bytes are bounded by `state_max_bytes`: the oldest alerts
//! are dropped (and counted) to make room. Revocation jobs live in their own tables and are
//! never dropped; a pending job's token is kept only sealed ([`super::sealed`]).
//!
//! redb 5 in `MultiWriter` mode lets `sensor outbox` read and re-queue while the daemon
//! runs. Tables:
//! - `alerts`: seq → native JSON line
//! - `deliveries`: (output id, seq) → [`DeliveryState`] (JSON; empty = fresh)
//! - `revocations`: job id → [`RevocationJob`] (JSON)
//! - `sealed_tokens`: job id → nonce ‖ ciphertext
//! - `meta`: counters (`next_seq`, `stored_bytes`, `dropped`, rate-limit clocks)

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
const DELIVERIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("deliveries");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
const SEALED: TableDefinition<&str, &[u8]> = TableDefinition::new("sealed_tokens");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Bytes counted per delivery row.
const ROW_OVERHEAD: u64 = 128;

/// Outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The state directory could not be created or secured.
    #[error("state_dir {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed (open, transaction, storage).
    #[error("outbox database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record does not parse (written by an incompatible version?).
    #[error("outbox record: {0}")]
    Record(#[from] serde_json::Error),
}

/// Delivery state of one (output, alert).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryState {
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not retried before this time (ms since the epoch).
    #[serde(default)]
    pub not_before_ms: u64,
    /// Permanently failed: parked until `sensor outbox retry`.
    #[serde(default)]
    pub failed: bool,
    /// Last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Status of a revocation job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The provider accepted the revocation.
    Revoked,
    /// The provider says the token is no longer valid.
    AlreadyInvalid,
    /// Failed permanently (kept sealed until `sensor outbox retry`).
    Failed,
    /// Recorded what would be sent (`mode: dry_run`); nothing sent.
    DryRun,
    /// No revocation endpoint is configured for its method.
    Unsupported,
}

impl JobStatus {
    /// Whether the job is over (its sealed token is gone).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Revoked
                | JobStatus::AlreadyInvalid
                | JobStatus::DryRun
                | JobStatus::Unsupported
        )
    }
}

/// One token's revocation, keyed by a fingerprint stable across restarts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevocationJob {
    /// `rv-<hex>`: keyed MAC of the token under the state key.
    pub id: String,
    /// The rule's revocation method (`github_credentials_revoke`, `webhook`, …).
    pub method: String,
    pub provider: String,
    pub kind: String,
    pub detector: String,
    /// The finding's fingerprint (under `fingerprint_key`).
    pub fingerprint: String,
    pub safe_prefix: String,
    pub length: usize,
    /// The finding alert that triggered it.
    pub alert_id: String,
    /// The workspace (native JSON object).
    pub workspace: Value,
    /// Where the secret was learned (`chain.source`).
    pub source: Value,
    /// Environment variable that held it, if learned from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    pub status: JobStatus,
    #[serde(default)]
    pub attempts: u32,
    pub created_ms: u64,
    #[serde(default)]
    pub not_before_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Recorded only (mode `dry_run`).
    #[serde(default)]
    pub dry_run: bool,
}

/// A job to create with an alert.
pub struct NewJob {
    pub job: RevocationJob,
    /// The sealed token (absent for dry runs).
    pub sealed: Option<Vec<u8>>,
}

/// An alert to commit.
pub struct NewAlert {
    /// Native JSON line.
    pub json: Vec<u8>,
    /// An output that must not receive it (an error alert about that output).
    pub skip_output: Option<String>,
    /// A revocation job it triggers.
    pub job: Option<NewJob>,
}

/// What a commit did.
#[derive(Clone, Debug, Default)]
pub struct CommitReport {
    /// Alerts committed.
    pub committed: u64,
    /// Oldest alerts dropped to stay under `state_max_bytes` (or too big to store).
    pub dropped: u64,
    /// Revocation jobs created (others were duplicates of known tokens).
    pub jobs_created: u64,
}

/// One pending delivery.
#[derive(Clone, Debug)]
pub struct Pending {
    pub seq: u64,
    pub json: Vec<u8>,
    pub state: DeliveryState,
}

/// The outbox.
pub struct Outbox {
    db: Database,
    path: PathBuf,
    outputs: Vec<String>,
    max_bytes: u64,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates `dir` with mode 0700 (and tightens an existing one).
pub fn secure_dir(dir: &Path) -> Result<(), OutboxError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| OutboxError::Dir {
        path: dir.into(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

impl Outbox {
    /// The database file in a state directory.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("outbox.redb")
    }

    /// Opens (creating) the outbox in `dir` (created 0700) for `outputs` (their ids);
    /// deliveries of outputs no longer configured are discarded.
    pub fn open(dir: &Path, max_bytes: u64, outputs: Vec<String>) -> Result<Outbox, OutboxError> {
        secure_dir(dir)?;
        let path = Self::file(dir);
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| OutboxError::Db {
                path: path.clone(),
                source: Box::new(e.into()),
            })?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let ob = Outbox {
            db,
            path,
            outputs,
            max_bytes,
        };
        ob.init()?;
        Ok(ob)
    }

    fn err<E: Into<redb::Error>>(&self, e: E) -> OutboxError {
        OutboxError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn init(&self) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            tx.open_table(ALERTS).map_err(|e| self.err(e))?;
            tx.open_table(JOBS).map_err(|e| self.err(e))?;
            tx.open_table(SEALED).map_err(|e| self.err(e))?;
            tx.open_table(META).map_err(|e| self.err(e))?;
            let mut del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
            if !self.outputs.is_empty() {
                let stale: Vec<(String, u64)> = del
                    .range(..)
                    .map_err(|e| self.err(e))?
                    .filter_map(|r| r.ok())
                    .map(|(k, _)| {
                        let (o, s) = k.value();
                        (o.to_string(), s)
                    })
                    .filter(|(o, _)| !self.outputs.contains(o))
                    .collect();
                if !stale.is_empty() {
                    tracing::warn!(
                        deliveries = stale.len(),
                        "outbox: discarding deliveries to outputs no longer configured"
                    );
                }
                for (o, s) in &stale {
                    del.remove((o.as_str(), *s)).map_err(|e| self.err(e))?;
                }
                drop(del);
                let seqs: Vec<u64> = stale.iter().map(|(_, s)| *s).collect();
                self.collect_garbage(&tx, &seqs)?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Removes alerts among `seqs` that no output still needs.
    fn collect_garbage(
        &self,
        tx: &redb::WriteTransaction,
        seqs: &[u64],
    ) -> Result<(), OutboxError> {
        let del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
        let mut alerts = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let mut freed = 0u64;
        for &seq in seqs {
            let mut needed = false;
            for o in &self.outputs {
                if del
                    .get((o.as_str(), seq))
                    .map_err(|e| self.err(e))?
                    .is_some()
                {
                    needed = true;
                    break;
                }
            }
            if !needed {
                if let Some(v) = alerts.remove(seq).map_err(|e| self.err(e))? {
                    freed += self.footprint(v.value().len());
                }
            }
        }
        if freed > 0 {
            let cur = meta
                .get("stored_bytes")
                .map_err(|e| self.err(e))?
                .map(|g| g.value())
                .unwrap_or(0);
            meta.insert("stored_bytes", cur.saturating_sub(freed))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Bytes an alert counts against `state_max_bytes`: what it takes in the file — B-tree
    /// pages hold about twice the value bytes (measured: 3.6 KB of file per 1.6 KB alert,
    /// `cargo bench --bench delivery`) — plus its delivery rows.
    fn footprint(&self, len: usize) -> u64 {
        2 * len as u64 + ROW_OVERHEAD * self.outputs.len() as u64
    }

    fn meta_get(
        &self,
        t: &impl ReadableTable<&'static str, u64>,
        k: &str,
    ) -> Result<u64, OutboxError> {
        Ok(t.get(k)
            .map_err(|e| self.err(e))?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// Commits alerts (and the revocation jobs they trigger) durably, dropping the oldest
    /// alerts if the new ones do not fit in `state_max_bytes`.
    pub fn commit(&self, items: &[NewAlert]) -> Result<CommitReport, OutboxError> {
        let mut rep = CommitReport::default();
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut alerts = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
            let mut del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
            let mut jobs = tx.open_table(JOBS).map_err(|e| self.err(e))?;
            let mut sealed = tx.open_table(SEALED).map_err(|e| self.err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let mut seq = self.meta_get(&meta, "next_seq")?;
            let mut stored = self.meta_get(&meta, "stored_bytes")?;
            let mut dropped = self.meta_get(&meta, "dropped")?;
            for item in items {
                if let Some(nj) = &item.job {
                    let existing: Option<RevocationJob> =
                        match jobs.get(nj.job.id.as_str()).map_err(|e| self.err(e))? {
                            Some(g) => Some(serde_json::from_slice(g.value())?),
                            None => None,
                        };
                    // A token is revoked once; a dry-run record is upgraded when revocation
                    // is switched on.
                    let create = match existing {
                        None => true,
                        Some(j) => j.status == JobStatus::DryRun && !nj.job.dry_run,
                    };
                    if create {
                        jobs.insert(nj.job.id.as_str(), serde_json::to_vec(&nj.job)?.as_slice())
                            .map_err(|e| self.err(e))?;
                        if let Some(s) = &nj.sealed {
                            sealed
                                .insert(nj.job.id.as_str(), s.as_slice())
                                .map_err(|e| self.err(e))?;
                        }
                        rep.jobs_created += 1;
                    }
                }
                let targets: Vec<&String> = self
                    .outputs
                    .iter()
                    .filter(|o| item.skip_output.as_deref() != Some(o.as_str()))
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let size = self.footprint(item.json.len());
                if size > self.max_bytes {
                    dropped += 1;
                    rep.dropped += 1;
                    continue;
                }
                // Make room: drop the oldest alerts with all their deliveries.
                while stored + size > self.max_bytes {
                    let Some((old, len)) = alerts
                        .pop_first()
                        .map_err(|e| self.err(e))?
                        .map(|(k, v)| (k.value(), v.value().len()))
                    else {
                        stored = 0;
                        break;
                    };
                    for o in &self.outputs {
                        del.remove((o.as_str(), old)).map_err(|e| self.err(e))?;
                    }
                    stored = stored.saturating_sub(self.footprint(len));
                    dropped += 1;
                    rep.dropped += 1;
                }
                alerts
                    .insert(seq, item.json.as_slice())
                    .map_err(|e| self.err(e))?;
                for o in targets {
                    del.insert((o.as_str(), seq), [].as_slice())
                        .map_err(|e| self.err(e))?;
                }
                stored += size;
                seq += 1;
                rep.committed += 1;
            }
            meta.insert("next_seq", seq).map_err(|e| self.err(e))?;
            meta.insert("stored_bytes", stored)
                .map_err(|e| self.err(e))?;
            meta.insert("dropped", dropped).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rep)
    }

    /// The first `max` deliveries of `output` that are not parked as failed, in order.
    pub fn pending(&self, output: &str, max: usize) -> Result<Vec<Pending>, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
        let alerts = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in del
            .range((output, 0u64)..=(output, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (k, v) = r.map_err(|e| self.err(e))?;
            let state: DeliveryState = if v.value().is_empty() {
                DeliveryState::default()
            } else {
                serde_json::from_slice(v.value())?
            };
            if state.failed {
                continue;
            }
            let seq = k.value().1;
            let Some(json) = alerts.get(seq).map_err(|e| self.err(e))? else {
                continue;
            };
            out.push(Pending {
                seq,
                json: json.value().to_vec(),
                state,
            });
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    /// `output` delivered `seqs` (one durable commit per batch; redb's non-durable commits
    /// are not available to multi-process databases).
    pub fn ack(&self, output: &str, seqs: &[u64]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
            for &s in seqs {
                del.remove((output, s)).map_err(|e| self.err(e))?;
            }
        }
        self.collect_garbage(&tx, seqs)?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records a failed attempt (transient: `state.failed == false`; permanent: parked).
    pub fn set_state(
        &self,
        output: &str,
        seq: u64,
        state: &DeliveryState,
    ) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
            if del.get((output, seq)).map_err(|e| self.err(e))?.is_some() {
                del.insert((output, seq), serde_json::to_vec(state)?.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Re-queues every failed delivery and failed revocation job; returns their counts.
    pub fn retry_failed(&self) -> Result<(u64, u64), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let (mut d, mut j) = (0, 0);
        {
            let mut del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
            let failed: Vec<((String, u64), DeliveryState)> = del
                .range(..)
                .map_err(|e| self.err(e))?
                .filter_map(|r| r.ok())
                .filter_map(|(k, v)| {
                    let st: DeliveryState = serde_json::from_slice(v.value()).ok()?;
                    let (o, s) = k.value();
                    st.failed.then(|| ((o.to_string(), s), st))
                })
                .collect();
            for ((o, s), st) in failed {
                let fresh = DeliveryState {
                    last_error: st.last_error,
                    ..Default::default()
                };
                del.insert((o.as_str(), s), serde_json::to_vec(&fresh)?.as_slice())
                    .map_err(|e| self.err(e))?;
                d += 1;
            }
            let mut jobs = tx.open_table(JOBS).map_err(|e| self.err(e))?;
            let failed: Vec<RevocationJob> = jobs
                .range(..)
                .map_err(|e| self.err(e))?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| serde_json::from_slice::<RevocationJob>(v.value()).ok())
                .filter(|job| job.status == JobStatus::Failed)
                .collect();
            for mut job in failed {
                job.status = JobStatus::Pending;
                job.not_before_ms = 0;
                jobs.insert(job.id.as_str(), serde_json::to_vec(&job)?.as_slice())
                    .map_err(|e| self.err(e))?;
                j += 1;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok((d, j))
    }

    /// Every revocation job.
    pub fn jobs(&self) -> Result<Vec<RevocationJob>, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let jobs = tx.open_table(JOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in jobs.range(..).map_err(|e| self.err(e))? {
            let (_, v) = r.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The sealed token of a job.
    pub fn sealed(&self, id: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(SEALED).map_err(|e| self.err(e))?;
        let v = t
            .get(id)
            .map_err(|e| self.err(e))?
            .map(|g| g.value().to_vec());
        Ok(v)
    }

    /// Stores job updates durably; final jobs lose their sealed token in the same commit.
    pub fn update_jobs(&self, updated: &[RevocationJob]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut jobs = tx.open_table(JOBS).map_err(|e| self.err(e))?;
            let mut sealed = tx.open_table(SEALED).map_err(|e| self.err(e))?;
            for j in updated {
                jobs.insert(j.id.as_str(), serde_json::to_vec(j)?.as_slice())
                    .map_err(|e| self.err(e))?;
                if j.status.is_final() {
                    sealed.remove(j.id.as_str()).map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A counter or clock from `meta`.
    pub fn meta(&self, key: &str) -> Result<u64, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(META).map_err(|e| self.err(e))?;
        let v = t
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|g| g.value())
            .unwrap_or(0);
        Ok(v)
    }

    /// Sets a counter or clock in `meta` (durably).
    pub fn set_meta(&self, key: &str, value: u64) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| self.err(e))?;
            t.insert(key, value).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A redacted listing of pending and failed deliveries per output and of the revocation
    /// jobs (no token: jobs hold only fingerprints and safe prefixes).
    pub fn listing(&self) -> Result<Listing, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let del = tx.open_table(DELIVERIES).map_err(|e| self.err(e))?;
        let alerts = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let mut outputs: Vec<OutputListing> = Vec::new();
        for r in del.range(..).map_err(|e| self.err(e))? {
            let (k, v) = r.map_err(|e| self.err(e))?;
            let (o, seq) = k.value();
            let st: DeliveryState = if v.value().is_empty() {
                DeliveryState::default()
            } else {
                serde_json::from_slice(v.value())?
            };
            if outputs.last().is_none_or(|l| l.output != o) {
                outputs.push(OutputListing {
                    output: o.to_string(),
                    ..Default::default()
                });
            }
            let l = outputs.last_mut().expect("pushed");
            let alert: Value = alerts
                .get(seq)
                .map_err(|e| self.err(e))?
                .and_then(|g| serde_json::from_slice(g.value()).ok())
                .unwrap_or_default();
            let item = ItemListing {
                seq,
                alert_id: super::record::s(&alert, "/id").to_string(),
                alert_type: super::record::s(&alert, "/type").to_string(),
                time: super::record::s(&alert, "/time").to_string(),
                state: st.clone(),
            };
            if st.failed {
                l.failed += 1;
                l.items.push(item);
            } else {
                l.pending += 1;
                if st.attempts > 0 || l.items.iter().filter(|i| !i.state.failed).count() < 20 {
                    l.items.push(item);
                }
            }
        }
        drop((del, alerts));
        Ok(Listing {
            outputs,
            revocations: self.jobs()?,
            stored_bytes: self.meta_get(&meta, "stored_bytes")?,
            dropped: self.meta_get(&meta, "dropped")?,
        })
    }

    /// The database file size.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

/// `sensor outbox` output.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Listing {
    pub outputs: Vec<OutputListing>,
    pub revocations: Vec<RevocationJob>,
    /// Alert bytes held (the bound is `state_max_bytes`).
    pub stored_bytes: u64,
    /// Alerts dropped because the outbox was full, ever.
    pub dropped: u64,
}

/// Deliveries of one output.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutputListing {
    pub output: String,
    pub pending: u64,
    pub failed: u64,
    /// Failed items, and the first pending ones.
    pub items: Vec<ItemListing>,
}

/// One delivery.
#[derive(Clone, Debug, Serialize)]
pub struct ItemListing {
    pub seq: u64,
    pub alert_id: String,
    pub alert_type: String,
    pub time: String,
    pub state: DeliveryState,
}

/// `sensor outbox` as text.
pub fn render_listing(l: &Listing) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "alerts held: {} bytes; dropped when full (ever): {}",
        l.stored_bytes, l.dropped
    );
    if l.outputs.is_empty() {
        let _ = writeln!(o, "deliveries: none pending");
    }
    for out in &l.outputs {
        let _ = writeln!(
            o,
            "output {}: {} pending, {} failed",
            out.output, out.pending, out.failed
        );
        for i in &out.items {
            let state = if i.state.failed { "FAILED " } else { "pending" };
            let _ = writeln!(
                o,
                "  {state} #{:<6} {} {:<10} attempts={} {}",
                i.seq,
                i.alert_id,
                i.alert_type,
                i.state.attempts,
                i.state.last_error.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(o, "revocations: {}", l.revocations.len());
    for j in &l.revocations {
        let _ = writeln!(
            o,
            "  {:<15} {} {} {}… ({} chars) attempts={} {}",
            format!("{:?}", j.status).to_lowercase(),
            j.id,
            j.method,
            j.safe_prefix,
            j.length,
            j.attempts,
            j.last_error.as_deref().unwrap_or("")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("outbox-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn alert(i: u64, pad: usize) -> NewAlert {
        NewAlert {
            json: format!(
                "{{\"type\":\"finding\",\"id\":\"a{i}\",\"pad\":\"{}\"}}",
                "x".repeat(pad)
            )
            .into_bytes(),
            skip_output: None,
            job: None,
        }
    }

    #[test]
    fn outputs_acknowledge_separately_in_order_and_state_survives_reopen() {
        let d = dir("ack");
        let outs = vec!["a".to_string(), "b".to_string()];
        {
            let ob = Outbox::open(&d, 1 << 20, outs.clone()).unwrap();
            ob.commit(&(0..5).map(|i| alert(i, 10)).collect::<Vec<_>>())
                .unwrap();
            let p = ob.pending("a", 3).unwrap();
            assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
            ob.ack("a", &[0, 1, 2]).unwrap();
            ob.set_state(
                "b",
                0,
                &DeliveryState {
                    failed: true,
                    last_error: Some("HTTP 400".into()),
                    attempts: 1,
                    not_before_ms: 0,
                },
            )
            .unwrap();
        }
        let ob = Outbox::open(&d, 1 << 20, outs).unwrap();
        assert_eq!(
            ob.pending("a", 10)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(
            ob.pending("b", 10)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let l = ob.listing().unwrap();
        assert_eq!(
            l.outputs
                .iter()
                .map(|o| (o.output.as_str(), o.pending, o.failed))
                .collect::<Vec<_>>(),
            vec![("a", 2, 0), ("b", 4, 1)]
        );
        assert_eq!(ob.retry_failed().unwrap(), (1, 0));
        assert_eq!(ob.pending("b", 1).unwrap()[0].seq, 0);
        // Both outputs done with seq 0..2 → those alerts are gone.
        ob.ack("b", &[0, 1, 2]).unwrap();
        let tx = ob.db.begin_read().unwrap();
        assert_eq!(tx.open_table(ALERTS).unwrap().len().unwrap(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn full_outbox_drops_oldest_alerts_but_never_jobs() {
        let d = dir("full");
        let ob = Outbox::open(&d, 8192, vec!["a".into()]).unwrap();
        let mut items: Vec<NewAlert> = (0..40).map(|i| alert(i, 200)).collect();
        items[0].job = Some(NewJob {
            job: RevocationJob {
                id: "rv-1".into(),
                method: "webhook".into(),
                provider: "p".into(),
                kind: "k".into(),
                detector: "d".into(),
                fingerprint: "f".into(),
                safe_prefix: String::new(),
                length: 9,
                alert_id: "a0".into(),
                workspace: Value::Null,
                source: Value::Null,
                env_var: None,
                status: JobStatus::Pending,
                attempts: 0,
                created_ms: 0,
                not_before_ms: 0,
                last_error: None,
                dry_run: false,
            },
            sealed: Some(vec![1, 2, 3]),
        });
        let rep = ob.commit(&items).unwrap();
        assert!(rep.dropped > 0, "{rep:?}");
        assert_eq!(rep.committed, 40);
        let l = ob.listing().unwrap();
        assert!(l.stored_bytes <= 8192, "{}", l.stored_bytes);
        assert_eq!(l.dropped, rep.dropped);
        assert_eq!(l.outputs[0].pending, 40 - rep.dropped);
        // The newest survive, in order.
        let p = ob.pending("a", 100).unwrap();
        assert_eq!(p.last().unwrap().seq, 39);
        assert!(p.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(ob.jobs().unwrap().len(), 1);
        assert_eq!(ob.sealed("rv-1").unwrap(), Some(vec![1, 2, 3]));
        // A finished job loses its sealed token in the same commit.
        let mut j = ob.jobs().unwrap().remove(0);
        j.status = JobStatus::Revoked;
        ob.update_jobs(&[j]).unwrap();
        assert_eq!(ob.sealed("rv-1").unwrap(), None);
        assert_eq!(ob.jobs().unwrap()[0].status, JobStatus::Revoked);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
