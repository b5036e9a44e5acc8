//! A deterministic mutation fuzzer: the example playbooks in `playbooks/`, mutated (byte
//! flips, deletions, duplications, huge numbers and durations, deep nesting, long operator
//! chains, truncation), go through the real binary's `validate` and `plan`. Neither may
//! panic, die of a signal or run past 10 s, whatever the input.
//!
//! `RESTORE_DRILL_FUZZ_CASES` (default 150) sets how many mutated playbooks are tried,
//! `RESTORE_DRILL_FUZZ_SECONDS` (default 45) stops starting new ones after that long,
//! `RESTORE_DRILL_FUZZ_SEED` picks another sequence. A failing input is saved under the
//! cargo target directory (the path is in the failure message).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::hostile::{run_bounded, tool};

const PER_RUN: Duration = Duration::from_secs(10);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// splitmix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING_BYTES: &[u8] = b"\"'[]{}=.,#\\\n\t {}%-+*~|()0123456789\x00\xff\xc3";
const HUGE_VALUES: &[&str] = &[
    "18446744073709551615",
    "99999999999999999999999999999",
    "-9223372036854775808",
    "1e309",
    "nan",
    "-1",
    "0",
    "\"18446744073709551615s\"",
    "\"99999999999999999999999h\"",
    "\"366d\"",
    "\"1ns\"",
];

/// One mutation of `text`; returns its description.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>) -> String {
    let len = text.len().max(1);
    let at = rng.below(len).min(text.len());
    match rng.below(10) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let i = rng
                    .below(text.len().max(1))
                    .min(text.len().saturating_sub(1));
                if let Some(b) = text.get_mut(i) {
                    *b = *rng.pick(INTERESTING_BYTES);
                }
            }
            format!("flip {n} bytes")
        }
        1 => {
            let n = 1 + rng.below(200);
            let end = (at + n).min(text.len());
            text.drain(at..end);
            format!("delete {at}..{end}")
        }
        2 => {
            let n = 1 + rng.below(400);
            let end = (at + n).min(text.len());
            let copy = text[at..end].to_vec();
            let most = if rng.below(4) == 0 { 200 } else { 3 };
            let times = 1 + rng.below(most);
            let to = rng.below(len).min(text.len());
            for _ in 0..times {
                text.splice(to..to, copy.iter().copied());
            }
            format!("duplicate {at}..{end} x{times} at {to}")
        }
        3 => {
            // A number or a quoted duration replaced by something absurd.
            let value = rng.pick(HUGE_VALUES).as_bytes().to_vec();
            let start = text[at..]
                .iter()
                .position(|b| b.is_ascii_digit() || *b == b'"')
                .map_or(at, |p| p + at);
            let end = text[start..]
                .iter()
                .skip(1)
                .position(|b| !b.is_ascii_alphanumeric() && *b != b'"')
                .map_or(text.len(), |p| start + 1 + p);
            text.splice(start..end.max(start), value);
            format!("huge value at {start}")
        }
        4 => {
            let depth = *rng.pick(&[50usize, 100, 500, 5_000, 50_000]);
            let (open, close) = *rng.pick(&[("[", "]"), ("{a=", "}"), ("(", ")")]);
            let nest = format!("\nx = {}1{}\n", open.repeat(depth), close.repeat(depth));
            text.splice(at..at, nest.bytes());
            format!("nesting {open} x{depth} at {at}")
        }
        5 => {
            // A long operator chain, in a template or a `when`.
            let n = *rng.pick(&[10usize, 150, 201, 2_000, 20_000]);
            let piece = match rng.below(5) {
                0 => format!("when = '{}false'", "not ".repeat(n)),
                1 => format!("x = \"{{{{ {}1 }}}}\"", "1 + ".repeat(n)),
                2 => format!("x = \"{{{{ vars{} }}}}\"", ".a".repeat(n)),
                3 => format!("x = \"{{{{ 1{} }}}}\"", "|string".repeat(n)),
                _ => format!(
                    "x = \"{{% if false %}}{}{{% endif %}}\"",
                    "{% elif false %}y".repeat(n)
                ),
            };
            let line = format!("\n{piece}\n");
            text.splice(at..at, line.bytes());
            format!("chain x{n} at {at}")
        }
        6 => {
            text.truncate(at);
            format!("truncate at {at}")
        }
        7 => {
            // Swap two lines.
            let lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            let mut lines = lines;
            lines.swap(a, b);
            *text = lines.join(&b'\n');
            format!("swap lines {a} and {b}")
        }
        8 => {
            // Templates that do a lot of work (bounded by fuel and the work budget).
            let bomb = *rng.pick(&[
                "{{ range(100000) | join }}",
                "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
                "{{ [1] * 100000000000 }}",
                "{{ 'ab' * 1000000 }}",
                "{{ range(100000) | list | sort | reverse | unique | list | length }}",
            ]);
            let line = format!("\nbomb = \"{bomb}\"\n");
            text.splice(at..at, line.bytes());
            format!("bomb at {at}")
        }
        _ => {
            // A step table repeated many times.
            let step = b"\n[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"soon\"\n";
            let times = 1 + rng.below(2_000);
            for _ in 0..times {
                text.splice(at..at, step.iter().copied());
            }
            format!("{times} bad steps at {at}")
        }
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 4,
        "example playbooks missing in {}",
        dir.display()
    );
    seeds
}

#[test]
fn mutated_playbooks_never_crash_or_hang_validate_and_plan() {
    let cases = env_number("RESTORE_DRILL_FUZZ_CASES", 150);
    let budget = Duration::from_secs(env_number("RESTORE_DRILL_FUZZ_SECONDS", 45));
    let seed = env_number("RESTORE_DRILL_FUZZ_SEED", 0x5EED_D811);
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut ran = 0;
    for case in 0..cases {
        if started.elapsed() > budget {
            break;
        }
        let mut rng = Rng(seed ^ case.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let (name, original) = rng.pick(&seeds);
        let mut text = original.clone();
        let steps: Vec<String> = (0..1 + rng.below(3))
            .map(|_| mutate(&mut rng, &mut text))
            .collect();
        std::fs::write(dir.path().join("playbook.toml"), &text).unwrap();
        for sub in ["validate", "plan"] {
            let mut cmd = tool(dir.path(), &[sub, "playbook.toml"]);
            cmd.env_remove("CORTEX_DB");
            let out = run_bounded(cmd, PER_RUN);
            let sane =
                !out.timed_out && out.signal.is_none() && matches!(out.code, Some(0) | Some(2));
            if !sane {
                let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("fuzz-failure-{seed:x}-{case}.toml"));
                std::fs::write(&keep, &text).unwrap();
                let stderr = &out.stderr;
                let start = stderr.len().saturating_sub(2000);
                let start = (start..stderr.len())
                    .find(|i| stderr.is_char_boundary(*i))
                    .unwrap_or(stderr.len());
                panic!(
                    "`{sub}` of {name} mutated by {steps:?} (case {case}, seed {seed:#x}): \
                     code {:?}, signal {:?}, timed out {}, {:?}\ninput saved as {}\n{}",
                    out.code,
                    out.signal,
                    out.timed_out,
                    out.elapsed,
                    keep.display(),
                    &stderr[start..]
                );
            }
        }
        ran += 1;
    }
    eprintln!(
        "fuzz: {ran} mutated playbooks through validate and plan in {:?}",
        started.elapsed()
    );
    assert!(
        ran >= cases.min(20),
        "only {ran} cases ran within {budget:?}"
    );
}
