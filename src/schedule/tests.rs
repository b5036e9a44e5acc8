use super::*;

#[test]
fn named_schedules_and_cron_expressions_become_systemd_calendars() {
    let cases = [
        ("monthly", "0 3 1 * *", "*-*-01 03:00:00"),
        ("weekly", "0 3 * * 1", "Mon *-*-* 03:00:00"),
        ("0 4 * * 1-5", "0 4 * * 1-5", "Mon..Fri *-*-* 04:00:00"),
        ("*/15 * * * *", "*/15 * * * *", "*-*-* *:00/15:00"),
        ("30 2 1,15 * *", "30 2 1,15 * *", "*-*-01,15 02:30:00"),
        ("0 3 * * 0,7", "0 3 * * 0,7", "Sun,Sun *-*-* 03:00:00"),
    ];
    for (given, cron, calendar) in cases {
        let e = every(given).unwrap();
        assert_eq!(
            (e.cron.as_str(), e.calendar.as_str()),
            (cron, calendar),
            "{given}"
        );
    }
}

#[test]
fn a_date_some_month_has_is_a_schedule() {
    for given in [
        "0 0 29 2 *",
        "0 0 31 */2 *",
        "0 0 31 2,3 *",
        "0 0 30 4-6 *",
        "0 0 */10 2 *",
    ] {
        assert!(every(given).is_ok(), "{given}");
    }
}

#[test]
fn a_schedule_that_cannot_be_converted_is_refused_naming_the_field() {
    for (given, says) in [
        ("hourly", "1 fields, not 5"),
        ("0 25 * * *", "the hour field `25`"),
        ("0 3 1 * 1", "both day of month and day of week"),
        ("0 3 * * */2", "the day of week field `*/2`"),
        ("0 3 L * *", "the day of month field `L`"),
        (
            "0 0 31 2 *",
            "it never runs: no month of `2` has a day `31`",
        ),
        ("0 0 30,31 2 *", "never runs"),
        ("0 0 31 4,6,9,11 *", "never runs"),
    ] {
        let e = every(given).unwrap_err();
        assert!(e.contains(says), "{given}: {e}");
    }
}
