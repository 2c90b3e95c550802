//! getenv evidence for alert chains: which watched processes asked libc for which
//! secret-bearing environment variables (`getenv("GITHUB_TOKEN")`), so an alert can say
//! "this process read GITHUB_TOKEN, then sent it". The kernel reports each name once per
//! process image; this keeps the names that matter — secret-named variables (the same
//! heuristic that learns env secrets at exec) and variables a workspace learned a secret
//! from (`DATABASE_URL`'s password) — per process, bounded, and picks the ones that
//! explain a given leak. Names only: the sensor never reads the values through this path.

use rustc_hash::FxHashMap as HashMap;
use std::time::{Duration, Instant};

use super::alert::{EnvAccess, Hop, SecretSource};
use crate::detect::harvest::is_secret_env;
use crate::state::events::ProcessRef;

/// Names kept per process.
pub const MAX_PER_PROCESS: usize = 32;
/// Processes kept (the oldest exited ones go first when full).
pub const MAX_PROCESSES: usize = 16384;
/// Entries an alert's `chain.env_reads` carries at most.
pub const MAX_IN_CHAIN: usize = 16;

#[derive(Default)]
struct Reads {
    reads: Vec<EnvAccess>,
    exited: Option<Instant>,
}

/// Per-process getenv reads of the names that matter.
pub struct EnvEvidence {
    procs: HashMap<u32, Reads>,
    /// How long an exited process's reads stay (its descendants may send later).
    keep: Duration,
    /// Reads not recorded because a bound was reached.
    pub dropped: u64,
}

impl EnvEvidence {
    /// Evidence kept `keep` after a process exits.
    pub fn new(keep: Duration) -> EnvEvidence {
        EnvEvidence {
            procs: HashMap::default(),
            keep,
            dropped: 0,
        }
    }

    /// Whether a read of `var` is worth keeping: a secret-named variable, or one the
    /// process's workspace learned a secret from (`learned` says).
    pub fn relevant(var: &str, learned: impl FnOnce(&str) -> bool) -> bool {
        is_secret_env(var) || learned(var)
    }

    /// Records that `process` read `var` (call only for [`EnvEvidence::relevant`] names).
    pub fn record(&mut self, process: &ProcessRef, var: &str) {
        if !self.procs.contains_key(&process.pid) && self.procs.len() >= MAX_PROCESSES {
            self.evict();
            if self.procs.len() >= MAX_PROCESSES {
                self.dropped += 1;
                return;
            }
        }
        let e = self.procs.entry(process.pid).or_default();
        if e.exited.is_some() {
            // A reused pid: a new process.
            *e = Reads::default();
        }
        if e.reads.iter().any(|r| r.var == var && r.exe == process.exe) {
            return;
        }
        if e.reads.len() >= MAX_PER_PROCESS {
            self.dropped += 1;
            return;
        }
        e.reads.push(EnvAccess {
            pid: process.pid,
            exe: process.exe.clone(),
            var: var.to_string(),
        });
    }

    /// A new process got `pid` (fork, or an exec after the old holder exited): forget an
    /// exited holder's reads.
    pub fn new_process(&mut self, pid: u32) {
        if self.procs.get(&pid).is_some_and(|e| e.exited.is_some()) {
            self.procs.remove(&pid);
        }
    }

    /// The process exited: its reads stay for `keep`.
    pub fn exited(&mut self, pid: u32) {
        if let Some(e) = self.procs.get_mut(&pid) {
            e.exited = Some(Instant::now());
        }
    }

    /// Forgets exited processes older than `keep` (call periodically).
    pub fn expire(&mut self) {
        let keep = self.keep;
        self.procs
            .retain(|_, e| e.exited.is_none_or(|t| t.elapsed() < keep));
    }

    fn evict(&mut self) {
        self.expire();
        if self.procs.len() < MAX_PROCESSES {
            return;
        }
        let oldest = self
            .procs
            .iter()
            .filter_map(|(p, e)| e.exited.map(|t| (t, *p)))
            .min();
        if let Some((_, pid)) = oldest {
            self.procs.remove(&pid);
        }
    }

    /// The chain's getenv evidence for a leak sent by `sender`: reads by the sender, the
    /// processes the token passed through (`hops`), the process it was learned in and the
    /// sender's ancestors, of the variables that held the leaked value (`vars`, from the
    /// workspace's learning) — or, for a token the sensor did not learn (`known_format`),
    /// of any secret-named variable.
    pub fn for_chain(
        &self,
        sender: &ProcessRef,
        hops: &[Hop],
        source: &SecretSource,
        vars: &[String],
    ) -> Vec<EnvAccess> {
        let any = source.kind == "known_format";
        let mut pids = vec![sender.pid];
        pids.extend(hops.iter().rev().map(|h| h.pid));
        pids.extend(source.pid);
        pids.extend(sender.ancestry.iter().map(|a| a.pid));
        let mut out: Vec<EnvAccess> = Vec::new();
        for pid in pids {
            let Some(e) = self.procs.get(&pid) else {
                continue;
            };
            for r in &e.reads {
                if (any || vars.contains(&r.var)) && !out.contains(r) && out.len() < MAX_IN_CHAIN {
                    out.push(r.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, exe: &str, ancestry: &[(u32, &str)]) -> ProcessRef {
        ProcessRef::fixture(pid, exe, ancestry)
    }

    fn env_source(pid: u32, var: &str) -> SecretSource {
        SecretSource {
            kind: "env",
            var: Some(var.into()),
            pid: Some(pid),
            ..Default::default()
        }
    }

    #[test]
    fn relevance_is_the_secret_name_heuristic_or_a_learned_name() {
        assert!(EnvEvidence::relevant("GITHUB_TOKEN", |_| false));
        assert!(EnvEvidence::relevant("MY_API_KEY", |_| false));
        assert!(!EnvEvidence::relevant("LANG", |_| false));
        assert!(!EnvEvidence::relevant("DATABASE_URL", |_| false));
        assert!(EnvEvidence::relevant("DATABASE_URL", |v| v == "DATABASE_URL"));
    }

    #[test]
    fn the_chain_names_the_sender_and_ancestors_that_read_the_leaked_variable() {
        let mut ev = EnvEvidence::new(Duration::from_secs(60));
        let agent = proc(10, "/usr/bin/agent", &[(1, "/sbin/init")]);
        let curl = proc(
            11,
            "/usr/bin/curl",
            &[(10, "/usr/bin/agent"), (1, "/sbin/init")],
        );
        let other = proc(99, "/usr/bin/other", &[]);
        ev.record(&agent, "GITHUB_TOKEN");
        ev.record(&agent, "GITHUB_TOKEN");
        ev.record(&agent, "AWS_SECRET_ACCESS_KEY");
        ev.record(&curl, "GITHUB_TOKEN");
        ev.record(&other, "GITHUB_TOKEN");
        let vars = vec!["GITHUB_TOKEN".to_string()];
        let got = ev.for_chain(&curl, &[], &env_source(10, "GITHUB_TOKEN"), &vars);
        let got: Vec<(u32, &str)> = got.iter().map(|r| (r.pid, r.var.as_str())).collect();
        // Sender first, then the agent; not the unrelated process, not the other variable.
        assert_eq!(got, [(11, "GITHUB_TOKEN"), (10, "GITHUB_TOKEN")]);
        // A token learned elsewhere (a file) is not explained by getenv reads…
        let file = SecretSource {
            kind: "file",
            ..Default::default()
        };
        assert!(ev.for_chain(&curl, &[], &file, &[]).is_empty());
        // …one the sensor only knows by format is: any secret-named read in the chain.
        let known = SecretSource {
            kind: "known_format",
            ..Default::default()
        };
        assert_eq!(ev.for_chain(&agent, &[], &known, &[]).len(), 2);
        // A pipe hop that read the variable counts too.
        let hop = Hop {
            pid: 99,
            exe: "/usr/bin/other".into(),
            via: "pipe",
        };
        let got = ev.for_chain(&proc(12, "/bin/nc", &[]), &[hop], &known, &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].pid, 99);
    }

    #[test]
    fn bounded_and_forgotten_after_exit_and_pid_reuse() {
        let mut ev = EnvEvidence::new(Duration::from_millis(0));
        let p = proc(20, "/bin/x", &[]);
        for i in 0..MAX_PER_PROCESS + 5 {
            ev.record(&p, &format!("V{i}_TOKEN"));
        }
        let known = SecretSource {
            kind: "known_format",
            ..Default::default()
        };
        assert_eq!(ev.for_chain(&p, &[], &known, &[]).len(), MAX_IN_CHAIN);
        assert_eq!(ev.dropped, 5);
        assert_eq!(ev.procs[&20].reads.len(), MAX_PER_PROCESS);
        // Kept while exited (within `keep`), forgotten by a fork reusing the pid.
        ev.exited(20);
        assert!(!ev.for_chain(&p, &[], &known, &[]).is_empty());
        ev.new_process(20);
        assert!(ev.for_chain(&p, &[], &known, &[]).is_empty());
        // Expiry drops exited processes only.
        ev.record(&p, "A_TOKEN");
        ev.record(&proc(21, "/bin/y", &[]), "B_TOKEN");
        ev.exited(20);
        ev.expire();
        assert!(!ev.procs.contains_key(&20));
        assert!(ev.procs.contains_key(&21));
    }
}
