//! The gates on records made here: which phases the RTO counts, each gate's boundary.

use serde_json::json;

use super::*;
use crate::artifact::{GateStatus, StepStatus};

fn record(id: &str, phase: &str, seconds: f64) -> StepRecord {
    StepRecord {
        id: id.into(),
        kind: "exec".into(),
        name: format!("Step {id}"),
        phase: phase.into(),
        section: Section::Steps,
        status: StepStatus::Passed,
        started_at: None,
        duration_s: seconds,
        assumed_s: None,
        attempts: 1,
        runbook: None,
        outputs: Default::default(),
        metrics: Default::default(),
        checks: Vec::new(),
        error: None,
        log_tail: None,
    }
}

fn gates(rto: Option<&str>, phases: Option<&[&str]>) -> Gates {
    Gates {
        rto: rto.map(Into::into),
        rto_phases: phases.map(|p| p.iter().map(|s| s.to_string()).collect()),
        ..Gates::default()
    }
}

/// Times that are powers of two, so every sum names the steps it counted.
fn drill() -> Vec<StepRecord> {
    let with = |mut r: StepRecord, f: &dyn Fn(&mut StepRecord)| {
        f(&mut r);
        r
    };
    vec![
        with(record("prepare", "other", 1024.0), &|r| {
            r.section = Section::Setup
        }),
        record("backup", "backup", 1.0),
        record("prep", "setup", 2.0),
        record("restore", "restore", 4.0),
        record("verify", "verify", 8.0),
        with(record("decide", "decide", 0.25), &|r| {
            r.assumed_s = Some(16.0)
        }),
        record("probe", "verify", 32.0),
        with(record("skipped", "restore", 64.0), &|r| {
            r.status = StepStatus::Skipped
        }),
        with(record("later", "restore", 128.0), &|r| {
            r.status = StepStatus::NotRun
        }),
        with(record("now", "restore", 256.0), &|r| {
            r.status = StepStatus::Running
        }),
        with(record("failed", "restart", 512.0), &|r| {
            r.status = StepStatus::Failed
        }),
        with(record("manual_backup", "backup", 0.5), &|r| {
            r.assumed_s = Some(2048.0)
        }),
        with(record("teardown", "verify", 4096.0), &|r| {
            r.section = Section::Cleanup
        }),
    ]
}

fn phase<'a>(rto: &'a RtoRecord, name: &str) -> &'a PhaseRecord {
    rto.phases.iter().find(|p| p.phase == name).unwrap()
}

/// Issue 16: by default every phase of `[[steps]]` counts but `backup` and `setup`;
/// setup and cleanup steps, and steps that did not run (or are still running), never.
#[test]
fn the_rto_counts_every_phase_but_backup_and_setup() {
    let rto = rto(&drill(), &gates(Some("15m"), None));
    assert_eq!(
        rto.counted_phases,
        ["restore", "verify", "decide", "restart"]
    );
    assert_eq!(rto.measured_s, Some(4.0 + 8.0 + 16.0 + 32.0 + 512.0));
    assert_eq!(rto.target_s, Some(900.0));
    let names: Vec<&str> = rto.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(
        names,
        ["backup", "setup", "restore", "verify", "decide", "restart"]
    );
    assert!(!phase(&rto, "backup").counted && !phase(&rto, "setup").counted);
    assert_eq!(phase(&rto, "backup").seconds, 1.0 + 2048.0);
    assert_eq!(phase(&rto, "backup").steps, ["backup", "manual_backup"]);
    assert_eq!(phase(&rto, "verify").seconds, 40.0);
    assert_eq!(phase(&rto, "verify").steps, ["verify", "probe"]);
    assert_eq!(phase(&rto, "restore").steps, ["restore"]);
    // Assumed time counts instead of the measured; only counted phases are listed as
    // holding assumed time.
    assert!(phase(&rto, "decide").assumed && phase(&rto, "backup").assumed);
    assert!(!phase(&rto, "verify").assumed);
    assert_eq!(rto.assumed_phases, ["decide"]);
}

/// Issue 16: `rto_phases` counts exactly the phases it names (backup too, when named).
#[test]
fn rto_phases_count_exactly_the_phases_named() {
    let rto = rto(&drill(), &gates(None, Some(&["restore", "backup"])));
    assert_eq!(rto.counted_phases, ["backup", "restore"]);
    assert_eq!(rto.measured_s, Some(1.0 + 2048.0 + 4.0));
    assert_eq!(rto.assumed_phases, ["backup"]);
    assert_eq!(rto.target_s, None);
    assert!(!phase(&rto, "verify").counted && !phase(&rto, "setup").counted);
    assert!(rto_gate(&rto).is_none(), "no target, no gate");
    let none = rto_gate_of(
        &[record("a", "restore", 3.0)],
        &gates(Some("1s"), Some(&[])),
    );
    // Nothing counted is not a recovery of 0s (it was met).
    assert_eq!(none.measured_s, None);
    assert_eq!(none.status, GateStatus::NotEvaluated);
}

fn rto_gate_of(steps: &[StepRecord], g: &Gates) -> GateRecord {
    rto_gate(&rto(steps, g)).unwrap()
}

#[test]
fn the_rto_gate_passes_up_to_its_target() {
    let steps = [record("restore", "restore", 60.0)];
    let at = rto_gate_of(&steps, &gates(Some("1m"), None));
    assert_eq!(at.status, GateStatus::Passed);
    assert_eq!((at.target_s, at.measured_s), (Some(60.0), Some(60.0)));
    assert_eq!(at.kind, GateKind::Rto);
    assert_eq!(at.name, "RTO");
    assert_eq!(at.detail, "recovery took 1m over phases restore; target 1m");
    let over = rto_gate_of(&steps, &gates(Some("59s"), None));
    assert_eq!(over.status, GateStatus::Failed);
    let mut manual = record("decide", "decide", 0.1);
    manual.assumed_s = Some(5.0);
    let assumed = rto_gate_of(&[manual], &gates(Some("1m"), None));
    assert!(
        assumed
            .detail
            .contains("(includes assumed time for decide)"),
        "{}",
        assumed.detail
    );
}

#[test]
fn max_duration_fails_only_over_its_limit() {
    let step = record("restore", "restore", 2.0);
    let under = max_duration(&step, Duration::from_secs(3));
    assert_eq!(under.status, GateStatus::Passed);
    assert_eq!(under.kind, GateKind::MaxDuration);
    assert_eq!(under.name, "Step restore under 3.0s");
    assert_eq!((under.target_s, under.measured_s), (Some(3.0), Some(2.0)));
    assert_eq!(under.detail, "restore took 2.0s (limit 3.0s)");
    assert_eq!(
        max_duration(&step, Duration::from_secs(2)).status,
        GateStatus::Passed
    );
    let over = max_duration(&step, Duration::from_secs(1));
    assert_eq!(over.status, GateStatus::Failed);
    assert_eq!(over.detail, "restore took 2.0s, over its limit of 1.0s");
}

fn rpo_gates(rpo: Option<&str>, from: Option<&str>) -> Gates {
    Gates {
        rpo: rpo.map(Into::into),
        rpo_from: from.map(Into::into),
        ..Gates::default()
    }
}

#[test]
fn the_rpo_is_the_age_of_the_data_at_the_drills_start() {
    let started: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    let ctx = Context::default();
    let from = Some("2026-01-01T00:30:00Z");
    let (record, gate) = rpo(&rpo_gates(Some("1h"), from), &ctx, started).unwrap();
    assert_eq!(record.measured_s, Some(1800.0));
    assert_eq!(record.target_s, Some(3600.0));
    assert_eq!(record.source.as_deref(), from);
    assert_eq!(gate.status, GateStatus::Passed);
    assert_eq!((gate.kind, gate.name.as_str()), (GateKind::Rpo, "RPO"));
    assert!(
        gate.detail.contains("30m before the drill"),
        "{}",
        gate.detail
    );
    let (_, at) = rpo(&rpo_gates(Some("30m"), from), &ctx, started).unwrap();
    assert_eq!(at.status, GateStatus::Passed);
    let (_, over) = rpo(&rpo_gates(Some("29m"), from), &ctx, started).unwrap();
    assert_eq!(over.status, GateStatus::Failed);
    // Data from after the start is no age at all.
    let later = Some("2026-01-01T02:00:00Z");
    let (record, _) = rpo(&rpo_gates(Some("1m"), later), &ctx, started).unwrap();
    assert_eq!(record.measured_s, Some(0.0));
}

#[test]
fn an_rpo_that_cannot_be_measured_fails_and_one_without_target_is_not_evaluated() {
    let started = jiff::Timestamp::now();
    let ctx = Context::default();
    assert!(rpo(&rpo_gates(Some("1h"), None), &ctx, started).is_none());
    let (record, gate) = rpo(&rpo_gates(Some("1h"), Some("yesterday")), &ctx, started).unwrap();
    assert_eq!(gate.status, GateStatus::Failed);
    assert!(
        gate.detail.starts_with("cannot measure the RPO: "),
        "{}",
        gate.detail
    );
    assert!(
        record
            .error
            .unwrap()
            .contains("`yesterday` is not a timestamp")
    );
    let (_, gate) = rpo(
        &rpo_gates(None, Some("2026-01-01T00:00:00Z")),
        &ctx,
        started,
    )
    .unwrap();
    assert_eq!(gate.status, GateStatus::NotEvaluated);
}

#[test]
fn unix_seconds_keep_their_fraction() {
    let ts = parse_timestamp(" 1700000000.5 ").unwrap();
    assert_eq!(ts.as_millisecond(), 1_700_000_000_500);
    let civil = parse_timestamp("2026-01-02 03:04:05").unwrap();
    assert_eq!(civil.as_second(), 1_767_323_045);
}

#[test]
fn custom_gates_pass_on_true_and_fail_on_false_or_an_error() {
    let mut ctx = Context::default();
    ctx.set("vars", json!({"n": 3}));
    let rto = rto(&[record("r", "restore", 5.0)], &gates(None, None));
    let yes = custom("n", "vars.n == 3 and rto.measured_s == 5", &ctx, &rto, None);
    assert_eq!(
        (yes.status, yes.kind),
        (GateStatus::Passed, GateKind::Custom)
    );
    assert_eq!(yes.name, "n");
    assert!(yes.detail.ends_with("is true"), "{}", yes.detail);
    let no = custom("n", "vars.n > 3", &ctx, &rto, None);
    assert_eq!(no.status, GateStatus::Failed);
    assert!(no.detail.ends_with("is false"), "{}", no.detail);
    let rpo_record = RpoRecord {
        target_s: None,
        measured_s: Some(7.0),
        source: None,
        error: None,
    };
    let rpo_seen = custom("r", "rpo.measured_s == 7", &ctx, &rto, Some(&rpo_record));
    assert_eq!(rpo_seen.status, GateStatus::Passed);
    let none = custom("r", "rpo is none", &ctx, &rto, None);
    assert_eq!(none.status, GateStatus::Passed);
    let broken = custom("b", "vars.n +", &ctx, &rto, None);
    assert_eq!(broken.status, GateStatus::Failed);
    assert!(
        broken.detail.contains("could not be evaluated"),
        "{}",
        broken.detail
    );
}

/// Issue 11: a recovery time that was not measured is never within its target.
#[test]
fn an_unmeasured_rto_is_not_evaluated() {
    let mut rto = rto(&[record("r", "restore", 5.0)], &gates(Some("1m"), None));
    rto.measured_s = None;
    let g = rto_gate(&rto).unwrap();
    assert_eq!(g.status, GateStatus::NotEvaluated);
    assert_eq!((g.target_s, g.measured_s), (Some(60.0), None));
}

#[test]
fn not_evaluated_keeps_its_target_and_reason() {
    let g = not_evaluated("RTO", GateKind::Rto, Some(90.0), "the drill failed");
    assert_eq!(g.status, GateStatus::NotEvaluated);
    assert_eq!((g.target_s, g.measured_s), (Some(90.0), None));
    assert_eq!(g.target.as_deref(), Some("1m 30s"));
    assert_eq!(g.detail, "the drill failed");
}
