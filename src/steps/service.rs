//! `service`: a background process that later steps use (the application on the restored
//! data). It runs in its own process group, its output streams into the drill's log line
//! by line (memory stays flat), and it is registered as a resource the moment it exists,
//! so the runner stops it at teardown whatever happens: SIGTERM to the group, `stop_grace`,
//! then SIGKILL. The step passes once the `ready` probe does, and fails, with the exit
//! status and the last lines it printed, when the service dies or is not ready in time.

use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::http::{self, Request};
use super::output::{OUTPUT_DRAIN, Output};
use super::{StepCtx, StepOutcome, duration, exec};
use crate::log::LogSink;
use crate::outputs;
use crate::playbook::Step;
use crate::proc::{self, Leader, Stopped, Tool};

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Between readiness checks.
const POLL: Duration = Duration::from_millis(100);

pub fn run(step: &Step, ctx: &StepCtx) -> anyhow::Result<StepOutcome> {
    let ready = ReadyProbe::of(step)?;
    let grace = duration(step.stop_grace.as_deref(), "stop_grace")?.unwrap_or(DEFAULT_STOP_GRACE);
    let started = Instant::now();
    let service = Service::start(step, ctx, ready.log_line.clone(), grace)?;
    let pid = service.pid;
    let teardown = Arc::clone(&service);
    ctx.resources
        .register("service", &pid.to_string(), &ctx.step_id, move || {
            teardown.stop()
        });
    ctx.log.write(
        &ctx.step_id,
        &format!("started pid {pid} (process group {pid})"),
    );

    let waited = ready.wait(&service, ctx);
    let mut outcome = StepOutcome::passed(outputs! {
        "pid" => pid,
        "pgid" => pid,
        "url" => ready.url.as_deref().map(|u| ctx.log.redactor().redact(u)),
        "ready_s" => started.elapsed().as_secs_f64(),
    });
    match waited {
        Ok(()) => {
            ctx.log.write(
                &ctx.step_id,
                &format!("ready after {:.2}s", started.elapsed().as_secs_f64()),
            );
            Ok(outcome)
        }
        Err(why) => {
            // Stop it now rather than at teardown: a retry must not meet the old instance
            // on its port. The registered teardown then finds it gone.
            let _ = service.stop();
            outcome.outputs.remove("ready_s");
            outcome.log_tail = service.output.tail(ctx, usize::MAX);
            Ok(outcome.fail(why))
        }
    }
}

/// `ready`: an http url that must answer 2xx and/or a line the service must print.
struct ReadyProbe {
    url: Option<String>,
    log_line: Option<String>,
    timeout: Duration,
}

impl ReadyProbe {
    fn of(step: &Step) -> anyhow::Result<Self> {
        let ready = step.ready.as_ref();
        Ok(Self {
            url: ready.and_then(|r| r.url.clone()),
            log_line: ready.and_then(|r| r.log_line.clone()),
            timeout: duration(ready.and_then(|r| r.timeout.as_deref()), "ready.timeout")?
                .unwrap_or(DEFAULT_READY_TIMEOUT),
        })
    }

    /// Polls until every probe given passes; fails when the service exits, the deadline
    /// passes or the step is cancelled. Without probes, a service still running after
    /// one poll interval counts as ready.
    fn wait(&self, service: &Service, ctx: &StepCtx) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let agent = http::agent();
        let mut last_probe = String::from("not probed yet");
        loop {
            if let Some(status) = service.exit_status() {
                return Err(format!(
                    "the service exited before it was ready: {}",
                    describe_exit(status)
                ));
            }
            let line_seen = self.log_line.is_none() || service.output.saw_ready_line();
            let url_ok = line_seen
                && self
                    .url
                    .as_deref()
                    .is_none_or(|url| probe(&agent, url, deadline, &mut last_probe));
            if line_seen
                && url_ok
                && (self.url.is_some() || self.log_line.is_some() || service.running_for() >= POLL)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(line_seen, &last_probe));
            }
            if !ctx.cancel.sleep(POLL) {
                return Err("stopped while waiting for the service to be ready".into());
            }
        }
    }

    fn not_ready(&self, line_seen: bool, last_probe: &str) -> String {
        let secs = crate::fmt::fmt_secs(self.timeout.as_secs_f64());
        match (&self.log_line, line_seen, &self.url) {
            (Some(line), false, _) => format!("not ready within {secs}: it never printed {line:?}"),
            (_, _, Some(url)) => {
                format!("not ready within {secs}: {url} never answered 2xx (last: {last_probe})")
            }
            _ => format!("not ready within {secs}"),
        }
    }
}

/// One readiness GET; true on 2xx. `last` keeps what it got, for the failure message.
fn probe(agent: &ureq::Agent, url: &str, deadline: Instant, last: &mut String) -> bool {
    let timeout = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(100), Duration::from_secs(2));
    match Request::get(url, timeout).send(agent, timeout) {
        Ok(r) if (200..300).contains(&r.status) => true,
        Ok(r) => {
            *last = format!("HTTP {}: {}", r.status, http::truncate(r.body.trim(), 200));
            false
        }
        Err(e) => {
            *last = e;
            false
        }
    }
}

/// A started service: its process group (the leader's pid), the leader to reap, and the
/// threads copying its output into the log.
struct Service {
    pid: i32,
    leader: Leader,
    started: Instant,
    grace: Duration,
    output: Output,
    stopped: AtomicBool,
    step_id: String,
    log: LogSink,
    /// Its entry in the run's registry of process groups, removed once it is stopped.
    procs: proc::Registry,
    tracked: proc::Key,
}

impl Service {
    fn start(
        step: &Step,
        ctx: &StepCtx,
        ready_line: Option<String>,
        grace: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        // A relative program path is found from `cwd`, where the service runs.
        let expr = exec::command(step, true, ctx.log.redactor())?;
        let program = match (&step.argv, &step.run) {
            (Some(argv), _) => argv.first().cloned().unwrap_or_default(),
            _ => "sh".into(),
        };
        let (stdout, stdout_w) = os_pipe::pipe()?;
        let (stderr, stderr_w) = os_pipe::pipe()?;
        // Its own group: the terminal's Ctrl-C reaches only the runner, which then stops
        // the service in order, and teardown can signal everything the service started.
        // Not the step's: it outlives the step, and dies with restore-drill.
        let leader = Tool::new(
            expr.stdin_null()
                .stdout_file(stdout_w)
                .stderr_file(stderr_w),
            format!("the service `{program}`"),
        )
        .spawn()?;
        let pid = leader.pgid();
        let tracked = ctx.procs.group("service", pid);
        let output = Output::capture([("stdout", stdout), ("stderr", stderr)], ctx, ready_line);
        Ok(Arc::new(Self {
            pid,
            leader,
            started: Instant::now(),
            grace,
            output,
            stopped: AtomicBool::new(false),
            step_id: ctx.step_id.clone(),
            log: ctx.log.clone(),
            procs: ctx.procs.clone(),
            tracked,
        }))
    }

    fn running_for(&self) -> Duration {
        self.started.elapsed()
    }

    /// The leader's exit status once it has exited (and is reaped).
    fn exit_status(&self) -> Option<ExitStatus> {
        self.leader.exited()
    }

    /// SIGTERM to the group, `grace` to exit, SIGKILL, then wait for the group to be gone.
    /// Safe to call twice: once it succeeded, it does nothing. An error means some process
    /// of the group survived (teardown then tries again and reports it).
    fn stop(&self) -> anyhow::Result<()> {
        if self.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(status) = self.exit_status() {
            self.note(&format!(
                "had already exited ({}) before it was stopped",
                describe_exit(status)
            ));
        }
        let how = match self.leader.stop(libc::SIGTERM, self.grace)? {
            Stopped::Gone => "nothing left to stop".to_string(),
            Stopped::Term => "stopped by SIGTERM".to_string(),
            Stopped::Kill => format!(
                "killed with SIGKILL after ignoring SIGTERM for {}",
                crate::fmt::fmt_secs(self.grace.as_secs_f64())
            ),
        };
        self.output.join(OUTPUT_DRAIN);
        self.note(&format!("pid {}: {how}", self.pid));
        self.procs.remove(self.tracked);
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn note(&self, text: &str) {
        self.log.write(&self.step_id, text);
    }
}

pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended without an exit status".into(),
    }
}
