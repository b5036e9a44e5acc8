//! `service`: a background process that later steps use (the application on the restored
//! data). It runs in its own process group, its output streams into the drill's log line
//! by line (memory stays flat), and it is registered as a resource the moment it exists,
//! so the runner stops it at teardown whatever happens: SIGTERM to the group, `stop_grace`,
//! then SIGKILL. The step passes once the `ready` probe does, and fails, with the exit
//! status and the last lines it printed, when the service dies or is not ready in time.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{self, Request};
use super::{StepCtx, StepOutcome, duration, exec};
use crate::log::LogSink;
use crate::outputs;
use crate::playbook::Step;
use crate::proc::{self, Leader, Stopped, Tool};

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Between readiness checks.
const POLL: Duration = Duration::from_millis(100);
/// Lines kept for the failure's log tail; the log file has them all.
const TAIL_LINES: usize = 40;
/// A line longer than this is cut into pieces, so a service printing without newlines
/// cannot grow memory.
const MAX_LINE: u64 = 8 * 1024;
/// At stop, how long the threads copying its output may take to see the end of it.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

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
            outcome.log_tail = service.output.tail(ctx);
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
        let expr = exec::command(step, true)?;
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

/// The service's stdout and stderr, copied line by line into the drill's log by two
/// threads, with the last lines kept for a failure's log tail.
struct Output {
    tail: Arc<Mutex<VecDeque<String>>>,
    saw_line: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Output {
    fn capture(
        streams: [(&'static str, os_pipe::PipeReader); 2],
        ctx: &StepCtx,
        ready_line: Option<String>,
    ) -> Self {
        let output = Self {
            tail: Arc::default(),
            saw_line: Arc::default(),
            threads: Mutex::default(),
        };
        for (name, stream) in streams {
            let pump = Pump {
                stream: name,
                step: ctx.step_id.clone(),
                log: ctx.log.clone(),
                tail: Arc::clone(&output.tail),
                saw_line: Arc::clone(&output.saw_line),
                ready_line: ready_line.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{name}", ctx.step_id))
                .spawn(move || pump.run(stream));
            if let Ok(handle) = spawned {
                output.threads.lock().unwrap().push(handle);
            }
        }
        output
    }

    fn saw_ready_line(&self) -> bool {
        self.saw_line.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) for the copying to finish, so the log is complete; a
    /// process that escaped the group may hold the pipe open, hence the limit.
    fn join(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut threads = self.threads.lock().unwrap();
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in std::mem::take(&mut *threads) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// The last lines printed, secrets redacted; None when it printed nothing.
    fn tail(&self, ctx: &StepCtx) -> Option<String> {
        let tail = self.tail.lock().unwrap();
        let text = tail.iter().cloned().collect::<Vec<_>>().join("\n");
        (!text.is_empty()).then(|| ctx.log.redactor().redact(&text))
    }
}

struct Pump {
    stream: &'static str,
    step: String,
    log: LogSink,
    tail: Arc<Mutex<VecDeque<String>>>,
    saw_line: Arc<AtomicBool>,
    ready_line: Option<String>,
}

impl Pump {
    fn run(self, stream: os_pipe::PipeReader) {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => self.line(&String::from_utf8_lossy(&buf)),
            }
        }
    }

    fn line(&self, raw: &str) {
        let line = raw.trim_end_matches(['\n', '\r']);
        self.log
            .write(&self.step, &format!("{}: {line}", self.stream));
        if self
            .ready_line
            .as_deref()
            .is_some_and(|want| line.contains(want))
        {
            self.saw_line.store(true, Ordering::SeqCst);
        }
        let mut tail = self.tail.lock().unwrap();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(format!("{}: {line}", self.stream));
    }
}

pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended without an exit status".into(),
    }
}
