//! The observers' unit tests: what each artifact failure does to the run's verdict.

use super::*;
use crate::artifact::Mode;
use crate::runner::RunOptions;
use std::sync::Mutex;

/// A record of a drill of one `wait` step, as the runner starts it, in `dir`.
fn record_in(dir: &Path) -> RunRecord {
    let playbook = dir.join("p.toml");
    let toml = "version = 1\n[drill]\nname = \"t\"\n[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"1ms\"\n";
    std::fs::write(&playbook, toml).unwrap();
    let pb = crate::playbook::load(&playbook, &crate::engines::specs()).unwrap();
    let opts = RunOptions::default();
    super::super::setup::initial_record(
        &pb,
        &opts,
        "t-1".into(),
        Mode::Automated,
        &jiff::Timestamp::now(),
        dir,
        &dir.join("r.json"),
        &dir.join("r.log"),
    )
}

/// Fails every event (a file it cannot write) after `after` successes.
struct Fails {
    after: usize,
    path: PathBuf,
}

impl Observer for Fails {
    fn on_event(&mut self, _: &Event<'_>, _: &RunRecord) -> io::Result<()> {
        if self.after == 0 {
            let e = io::Error::from(io::ErrorKind::PermissionDenied);
            return Err(named(&self.path, e));
        }
        self.after -= 1;
        Ok(())
    }
}

/// What the status and the summary were at the last event, as an observer saw them.
#[derive(Clone, Default)]
struct Saw(Arc<Mutex<Vec<(RunStatus, String)>>>);

impl Observer for Saw {
    fn on_event(&mut self, _: &Event<'_>, record: &RunRecord) -> io::Result<()> {
        let seen = (record.status, record.summary.clone());
        self.0.lock().unwrap().push(seen);
        Ok(())
    }
}

fn finish(observers: &mut Observers, record: &mut RunRecord) {
    record.finished_at = Some(jiff::Timestamp::now().to_string());
    record.status = RunStatus::Passed;
    observers.list_reports(record);
    observers.conclude(record);
    observers.emit(record, Event::DrillFinished);
}

fn stored(path: &Path) -> RunRecord {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The run ended as `error`, its error starting with `why`: the record in memory and
/// the one on disk.
fn ended_in_error(record: &RunRecord, json: &Path, why: &str) -> [RunRecord; 2] {
    let both = [record.clone(), stored(json)];
    for r in &both {
        assert_eq!(r.status, RunStatus::Error);
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.starts_with(why), "{error}");
    }
    both
}

#[test]
fn a_report_that_cannot_be_written_ends_the_run_as_error_and_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record_in(dir.path());
    let redactor = Arc::new(Redactor::default());
    // In a "folder" that is a file: it cannot be made.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let junit = dir.path().join("file/j.xml");
    let prom = dir.path().join("m.prom");
    let template = TemplateSource::from_setting("builtin:markdown", dir.path());
    let reports = [
        (ReportFormat::Junit, &junit),
        (ReportFormat::Prometheus, &prom),
    ]
    .map(|(f, p)| ReportWriter::new(f, p.clone(), template.clone(), redactor.clone(), dir.path()));
    let saw = Saw::default();
    let json = dir.path().join("r.json");
    let mut observers =
        Observers::new(reports.into(), &json, redactor, vec![Box::new(saw.clone())]);
    finish(&mut observers, &mut record);

    let why = format!("cannot write {}: ", junit.display());
    // The record writer, after the report writers, and the display saw it.
    for r in &ended_in_error(&record, &json, &why) {
        assert!(r.warnings.iter().any(|w| w.starts_with(&why)));
        assert!(
            r.summary.starts_with(&format!("error: {why}")),
            "{}",
            r.summary
        );
        assert!(!r.artifacts.contains_key("junit"), "{:?}", r.artifacts);
        assert!(r.artifacts.contains_key("prometheus"));
    }
    let seen = saw.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen, (RunStatus::Error, record.summary.clone()));
    // The report that could be written says what the record says: not a success
    // (it said 1, and `status` counts no pass for the run).
    let prom = std::fs::read_to_string(&prom).unwrap();
    assert!(
        prom.contains("restore_drill_success{drill=\"t\"} 0"),
        "{prom}"
    );
}

#[test]
fn any_observer_that_fails_is_never_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record_in(dir.path());
    let json = dir.path().join("r.json");
    let path = dir.path().join("theirs.txt");
    let fails = Fails {
        after: 1,
        path: path.clone(),
    };
    let mut observers = Observers::new(Vec::new(), &json, Arc::default(), vec![Box::new(fails)]);
    observers.emit(&mut record, Event::DrillStarted);
    assert_eq!(record.warnings, Vec::<String>::new());
    observers.emit_with(&mut record, |r| Event::StepStarted(&r.steps[0]));
    observers.progress(&mut record, 0, 1, 2);
    let why = format!("cannot write {}: permission denied", path.display());
    // Kept once, however often it failed, and the run goes on until it ends.
    assert_eq!(record.warnings, std::slice::from_ref(&why));
    assert_eq!(record.status, RunStatus::Running);
    finish(&mut observers, &mut record);
    assert_eq!(record.status, RunStatus::Error);
    assert_eq!(record.error.as_deref(), Some(why.as_str()));
    assert_eq!(stored(&json).status, RunStatus::Error);
}

#[test]
fn the_record_writer_names_the_record_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record_in(dir.path());
    let json = dir.path().join("gone/r.json");
    let mut observers = Observers::new(Vec::new(), &json, Arc::default(), Vec::new());
    observers.emit(&mut record, Event::DrillStarted);
    finish(&mut observers, &mut record);
    assert_eq!(record.status, RunStatus::Error);
    let why = format!("cannot write {}: No such file or directory", json.display());
    assert!(
        record.error.as_deref().unwrap().starts_with(&why),
        "{:?}",
        record.error
    );
    assert_eq!(record.warnings.len(), 1, "{:?}", record.warnings);
    assert!(!record.artifacts.contains_key("json"), "it is not there");
}

/// Issue 15: a signature that cannot be written ends a passing run as `error`, and
/// the record on disk says so (written again, without the signature listed).
#[test]
fn a_signature_that_cannot_be_written_is_in_the_record_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record_in(dir.path());
    let json = dir.path().join("r.json");
    // A folder (not empty) where the signature goes: the rename fails.
    std::fs::create_dir_all(dir.path().join("r.minisig/in")).unwrap();
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let key = pair.sk.to_box(None).unwrap().to_string();
    let signer = crate::evidence::Signer::load(&key, None).unwrap();
    let sealer = crate::evidence::SignatureWriter::new(signer, &json);
    let mut observers = Observers::new(Vec::new(), &json, Arc::default(), Vec::new());
    observers.seal_with(Box::new(sealer));
    // Where the notifier goes: it tells the verdict that ends up in the record.
    let notifier = Saw::default();
    observers.amend_with(Box::new(notifier.clone()));
    finish(&mut observers, &mut record);
    let why = format!("cannot write {}: ", dir.path().join("r.minisig").display());
    for r in &ended_in_error(&record, &json, &why) {
        assert!(!r.artifacts.contains_key("minisig"), "{:?}", r.artifacts);
    }
    let told = notifier.0.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, RunStatus::Error, "the alert said {told:?}");
    assert_eq!(record.warnings.len(), 1, "{:?}", record.warnings);
}

/// Issue 11: a drill that failed stays failed (exit 1) when a report cannot be
/// written; the write error is its `error`.
#[test]
fn a_failed_drill_that_cannot_write_a_report_stays_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = record_in(dir.path());
    let json = dir.path().join("r.json");
    let fails = Fails {
        after: 0,
        path: dir.path().join("j.xml"),
    };
    let mut observers = Observers::new(Vec::new(), &json, Arc::default(), vec![Box::new(fails)]);
    record.finished_at = Some(jiff::Timestamp::now().to_string());
    record.status = RunStatus::Failed;
    observers.conclude(&mut record);
    observers.emit(&mut record, Event::DrillFinished);
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(stored(&json).status, RunStatus::Failed);
    let error = record.error.as_deref().unwrap();
    assert!(error.starts_with("cannot write "), "{error}");
    assert!(record.summary.starts_with("failed"), "{}", record.summary);
}
