//! The retention audit (`expect_every`): does the backup schedule really produce a
//! recovery point at least that often?
//!
//! Among the candidates (oldest first), every gap between consecutive points is
//! measured, and so is the gap between the newest point and now: a schedule that
//! stopped yesterday fails the audit as surely as one with a hole in the middle.
//! The time before the oldest candidate is not audited (a new system has no history;
//! `within` bounds how far back the candidates go).

use std::time::Duration;

use jiff::Timestamp;

use super::Point;

/// The largest gap and every gap longer than expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// Seconds of the largest gap (0 without candidates).
    pub largest_gap_s: f64,
    /// The gaps longer than `expect_every`, as (from, to); `to` is now for the last one
    /// when the newest point is too old.
    pub gaps: Vec<(Timestamp, Timestamp)>,
}

/// Audits `candidates` (sorted oldest first) at `now`.
pub fn audit(candidates: &[Point], expect_every: Option<Duration>, now: Timestamp) -> Audit {
    let mut times: Vec<Timestamp> = candidates.iter().map(|p| p.time).collect();
    if !times.is_empty() {
        times.push(now.max(*times.last().unwrap_or(&now)));
    }
    let mut largest = 0.0_f64;
    let mut gaps = Vec::new();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).as_secs_f64();
        largest = largest.max(gap);
        if expect_every.is_some_and(|every| gap > every.as_secs_f64()) {
            gaps.push((pair[0], pair[1]));
        }
    }
    Audit {
        largest_gap_s: largest,
        gaps,
    }
}

impl Audit {
    /// The failure naming the gaps ("no backup between 03:00 and 09:00 on 2026-11-28
    /// (UTC)"), None when there is none.
    pub fn failure(&self, expect_every: &str, now: Timestamp) -> Option<String> {
        let first = self.gaps.first()?;
        let mut text = format!(
            "retention: a backup is expected every {expect_every}, but {}",
            describe(first.0, first.1, now)
        );
        if self.gaps.len() > 1 {
            let more = crate::fmt::plural(self.gaps.len() - 1, "more gap");
            text.push_str(&format!(" (and {more})"));
        }
        Some(text)
    }
}

fn describe(from: Timestamp, to: Timestamp, now: Timestamp) -> String {
    let (f, t) = (
        from.to_zoned(jiff::tz::TimeZone::UTC),
        to.to_zoned(jiff::tz::TimeZone::UTC),
    );
    let hours = crate::fmt::fmt_secs(to.duration_since(from).as_secs_f64());
    if to == now {
        return format!(
            "no backup since {} UTC ({hours} ago)",
            f.strftime("%H:%M on %Y-%m-%d")
        );
    }
    if f.date() == t.date() {
        format!(
            "no backup between {} and {} on {} UTC ({hours})",
            f.strftime("%H:%M"),
            t.strftime("%H:%M"),
            f.strftime("%Y-%m-%d")
        )
    } else {
        format!(
            "no backup between {} and {} UTC ({hours})",
            f.strftime("%Y-%m-%d %H:%M"),
            t.strftime("%Y-%m-%d %H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(times: &[&str]) -> Vec<Point> {
        times
            .iter()
            .map(|t| Point {
                url: t.to_string(),
                time: t.parse().unwrap(),
                bytes: 1,
                id: None,
                taken_of: None,
            })
            .collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_gap_between_points_is_named_with_its_day() {
        let now: Timestamp = "2026-11-28T10:30:00Z".parse().unwrap();
        let c = points(&[
            "2026-11-28T02:00:00Z",
            "2026-11-28T03:00:00Z",
            "2026-11-28T09:00:00Z",
            "2026-11-28T10:00:00Z",
        ]);
        let a = audit(&c, Some(HOUR), now);
        assert_eq!(a.largest_gap_s, 6.0 * 3600.0);
        let msg = a.failure("1h", now).unwrap();
        assert!(
            msg.contains("no backup between 03:00 and 09:00 on 2026-11-28 UTC"),
            "{msg}"
        );
        assert!(!msg.contains("more gap"), "one gap: {msg}");
        assert!(audit(&c, Some(7 * HOUR), now).failure("7h", now).is_none());
    }

    #[test]
    fn a_stopped_schedule_fails_from_the_newest_point_to_now() {
        let now: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        let c = points(&["2026-11-28T22:00:00Z", "2026-11-28T23:00:00Z"]);
        let a = audit(&c, Some(HOUR), now);
        assert_eq!(a.gaps.len(), 1);
        let msg = a.failure("1h", now).unwrap();
        assert!(
            msg.contains("no backup since 23:00 on 2026-11-28 UTC"),
            "{msg}"
        );
        let c = points(&["2026-11-27T22:00:00Z", "2026-11-28T23:00:00Z"]);
        let msg = audit(&c, Some(HOUR), now).failure("1h", now).unwrap();
        assert!(
            msg.contains("between 2026-11-27 22:00 and 2026-11-28 23:00 UTC"),
            "{msg}"
        );
        assert!(msg.ends_with("(and 1 more gap)"), "{msg}");
    }

    #[test]
    fn no_candidates_no_gap_and_no_expectation_only_measures() {
        let now = Timestamp::now();
        assert_eq!(audit(&[], Some(HOUR), now).largest_gap_s, 0.0);
        let c = points(&["2026-11-28T02:00:00Z"]);
        let a = audit(&c, None, "2026-11-28T05:00:00Z".parse().unwrap());
        assert_eq!((a.largest_gap_s, a.gaps.len()), (3.0 * 3600.0, 0));
    }
}
