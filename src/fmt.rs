//! How durations and sizes read in messages, the record and reports.

use std::time::Duration;

/// Seconds as `250ms`, `4.2s`, or `1m`, `3m 5s` from a minute on (whole seconds).
pub fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 59.95 {
        format!("{s:.1}s")
    } else {
        humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
    }
}

/// A word as a shell reads it back: quoted when it holds anything but plain characters.
pub fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    match !s.is_empty() && s.chars().all(plain) {
        true => s.to_string(),
        false => format!("'{}'", s.replace('\'', r"'\''")),
    }
}

/// `1536 | bytes` → "1.5 KiB".
pub fn human_bytes(n: f64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", n as u64)
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 step`, `2 steps`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(fmt_secs(0.25), "250ms");
        assert_eq!(fmt_secs(4.24), "4.2s");
        assert_eq!(fmt_secs(60.0), "1m");
        assert_eq!(fmt_secs(59.96), "1m");
        assert_eq!(fmt_secs(75.0), "1m 15s");
        assert_eq!(fmt_secs(900.0), "15m");
    }

    #[test]
    fn counts_read_as_words_do() {
        assert_eq!(plural(1, "step"), "1 step");
        assert_eq!(plural(0, "gate"), "0 gates");
        assert_eq!(plural(2, "step"), "2 steps");
    }
}
