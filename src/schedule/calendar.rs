//! `--every`: `monthly`, `weekly`, `daily` or a 5-field cron expression, as cron and as a
//! systemd `OnCalendar=`.

/// When a drill runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Every {
    /// The cron expression (crontab, Kubernetes CronJob).
    pub cron: String,
    /// The same as a systemd calendar event.
    pub calendar: String,
    /// In words, for descriptions.
    pub label: String,
}

/// Parses `--every`. Named schedules run at 03:00 (monthly: the 1st; weekly: Monday).
pub fn every(s: &str) -> Result<Every, String> {
    let named = |cron: &str, calendar: &str, label: &str| Every {
        cron: cron.into(),
        calendar: calendar.into(),
        label: label.into(),
    };
    match s.trim() {
        "monthly" => Ok(named("0 3 1 * *", "*-*-01 03:00:00", "monthly")),
        "weekly" => Ok(named("0 3 * * 1", "Mon *-*-* 03:00:00", "weekly")),
        "daily" => Ok(named("0 3 * * *", "*-*-* 03:00:00", "daily")),
        expr => from_cron(expr).map_err(|e| {
            format!("--every `{expr}`: {e} (monthly, weekly, daily, or a cron expression like `0 3 1 * *`)")
        }),
    }
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn from_cron(expr: &str) -> Result<Every, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("{} fields, not 5", fields.len()));
    }
    let mut parts = Vec::new();
    for (field, (what, low, high)) in fields.iter().zip(FIELDS) {
        parts.push(convert(field, what, low, high)?);
    }
    if fields[2] != "*" && fields[4] != "*" {
        return Err(
            "both day of month and day of week are set: cron runs on either, \
                    systemd only on both; keep one"
                .into(),
        );
    }
    // Cron accepts a date no month has (`31 2`): the job would never run, silently.
    let longest = |m: &u32| match m {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let (days, months) = (values(fields[2], 1, 31), values(fields[3], 1, 12));
    if !months.iter().any(|m| days.iter().any(|d| *d <= longest(m))) {
        return Err(format!(
            "it never runs: no month of `{}` has a day `{}`",
            fields[3], fields[2]
        ));
    }
    let dow = match fields[4] {
        "*" => String::new(),
        _ => format!("{} ", parts[4]),
    };
    let calendar = format!(
        "{dow}*-{}-{} {}:{}:00",
        parts[3], parts[2], parts[1], parts[0]
    );
    Ok(Every {
        cron: fields.join(" "),
        calendar,
        label: format!("at `{}`", fields.join(" ")),
    })
}

/// One cron field (`*`, `*/n`, `a`, `a-b`, `a-b/n`, lists of those) in systemd's syntax.
fn convert(field: &str, what: &str, low: u32, high: u32) -> Result<String, String> {
    let bad = || {
        format!(
            "the {what} field `{field}` is not a number, `*`, a range, a step or a list of those ({low}-{high})"
        )
    };
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| (low..=high).contains(n))
            .ok_or_else(bad)
    };
    let is_dow = what == "day of week";
    let show = |n: u32| match is_dow {
        true => DAYS[n as usize].to_string(),
        false => format!("{n:02}"),
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(number(s).ok().filter(|n| *n > 0).ok_or_else(bad)?)),
            None => (item, None),
        };
        let text = match (range, range.split_once('-')) {
            ("*", _) => match (step, is_dow) {
                (None, _) => "*".to_string(),
                (Some(_), true) => return Err(bad()),
                (Some(s), false) => format!("{}/{s}", show(low)),
            },
            (_, Some((a, b))) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || step.is_some() {
                    return Err(bad());
                }
                format!("{}..{}", show(a), show(b))
            }
            (n, None) => match step {
                None => show(number(n)?),
                Some(s) if !is_dow => format!("{}/{s}", show(number(n)?)),
                Some(_) => return Err(bad()),
            },
        };
        out.push(text);
    }
    Ok(out.join(","))
}

/// The values a cron field that [`convert`] accepted stands for.
fn values(field: &str, low: u32, high: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().unwrap_or(1).max(1)),
            None => (item, 1),
        };
        let (a, b) = match (range, range.split_once('-')) {
            ("*", _) => (low, high),
            (_, Some((a, b))) => (a.parse().unwrap_or(low), b.parse().unwrap_or(high)),
            (n, None) => {
                let n = n.parse().unwrap_or(low);
                (n, if step > 1 { high } else { n })
            }
        };
        out.extend((a..=b).step_by(step));
    }
    out
}
