//! `--print-events` lines: an event as JSON with every secret the sensor can know of
//! redacted before it is printed — known token formats, every workspace's learned
//! secrets, and the secrets the event's own process was started with (its exec's
//! environment and `NAME=value` arguments), whether or not the monitor has handled that
//! exec yet (an event can reach the printer before its process's exec does when the
//! process was first seen through `/proc`).

use crate::detect::{harvest, Engine, LearnedSecrets};
use crate::redact::Fingerprinter;
use crate::state::events::{EventBody, SensorEvent};

use super::monitor::Monitor;

/// The JSON of `ev` for `--print-events`, with no secret in it.
pub fn event_json(
    ev: &SensorEvent,
    fp: &Fingerprinter,
    engine: &Engine,
    monitor: &Monitor,
) -> serde_json::Value {
    let mut j = ev.to_json(fp);
    // Secrets of this very process: from its exec's environment when this is the exec,
    // and from its command line's NAME=value words always.
    let mut own = LearnedSecrets::new(fp.clone());
    if let EventBody::Exec { env, argv, .. } = &ev.body {
        for (v, m) in harvest::from_env(env)
            .into_iter()
            .chain(harvest::from_argv(argv))
        {
            own.learn(&v, m);
        }
    }
    for (v, m) in harvest::from_argv(&ev.process.argv) {
        own.learn(&v, m);
    }
    let redact = |args: &[String]| -> Vec<String> {
        args.iter()
            .map(|a| {
                if own.is_empty() {
                    a.clone()
                } else {
                    engine.redact(a, Some(&own))
                }
            })
            .collect()
    };
    let p = monitor.redact_process(&ev.process);
    let argv = redact(&p.argv);
    if let EventBody::Exec {
        argv: exec_argv, ..
    } = &ev.body
    {
        // The exec's own argv (the process's, unless it was seen before through /proc).
        let shown = if *exec_argv == ev.process.argv {
            argv.clone()
        } else {
            let mut q = (*ev.process).clone();
            q.argv = exec_argv.clone();
            redact(&monitor.redact_process(&std::sync::Arc::new(q)).argv)
        };
        j["argv"] = serde_json::to_value(shown).unwrap_or_default();
    }
    if !std::sync::Arc::ptr_eq(&p, &ev.process) || argv != p.argv {
        let mut q = (*p).clone();
        q.argv = argv;
        j["process"] = serde_json::to_value(&q).unwrap_or_default();
    }
    j
}
