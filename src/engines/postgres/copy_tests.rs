use super::*;
use crate::engines::digest::KeyRange;

/// Keys 1..=32 in 16 ranges of 2.
fn keyed() -> Plan {
    let key = KeyRange {
        column: "id".into(),
        min: 1,
        max: 32,
    };
    Plan::new("public.t", Some(key), None)
}

/// The rows of `plan` with the key in column `key_field`.
fn rows(plan: &Plan, key_field: Option<usize>) -> Rows<'_> {
    Rows {
        plan,
        piece: Piece::default(),
        quoted: "public.t".into(),
        key_field,
    }
}

/// `text` as the lines of a COPY of `keyed()` rows with the key in column `key_field`.
fn add(key_field: Option<usize>, text: &[u8]) -> anyhow::Result<BTreeMap<i64, Part>> {
    rows(&keyed(), key_field).add_lines(text)
}

/// COPY's text format escapes a tab, newline or backslash inside a value and prints NULL
/// as `\N`: each line is one row, hashed whole, in the range of its key.
#[test]
fn each_line_is_one_row_hashed_in_the_range_of_its_key() {
    let plan = keyed();
    let copy = b"a\\tb\t1\nx\\ny\\\\\t2\n\\N\t3\n\t4\n";
    let parts = rows(&plan, Some(1)).add_lines(&copy[..]).unwrap();
    assert_eq!(parts.values().map(|p| p.rows).sum::<u64>(), 4);
    // Keys 1 and 2 are in range 0, 3 and 4 in range 1.
    let first_two = row_hash(b"a\\tb\t1").wrapping_add(row_hash(b"x\\ny\\\\\t2"));
    assert_eq!(parts[&0].sum, first_two);
    // NULL (`\N`) and the empty string hash apart.
    let null = add(Some(1), b"\\N\t3\n").unwrap();
    let empty = add(Some(1), b"\t3\n").unwrap();
    assert_ne!(null[&1].sum, empty[&1].sum);
}

#[test]
fn a_line_that_is_not_a_row_is_an_error() {
    let err = |key_field, text: &[u8]| add(key_field, text).unwrap_err().to_string();
    assert_eq!(
        err(Some(0), b"COPY 1\n"),
        "a line without a key in column 1: `COPY 1`"
    );
    assert_eq!(
        err(Some(2), b"1\tx\n"),
        "a line without a key in column 3: `1\tx`"
    );
    assert_eq!(err(Some(0), b"1\tcut"), "a row cut short (no end of line)");
}

/// Keys outside the source's ranges go to the ranges below and above; without a key
/// every row is in range 0.
#[test]
fn keys_outside_the_ranges_and_tables_without_a_key() {
    let parts = add(Some(0), b"-5\ta\n99\tb\n").unwrap();
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [-1, 16]);
    let whole = Plan::new("public.t", None, None);
    let parts = rows(&whole, None).add_lines(&b"a\n\\N\n"[..]).unwrap();
    assert_eq!(parts[&0].rows, 2);
}

/// Lines are found across the reader's buffer fills: a buffer of 7 bytes gives the same
/// sums as one that holds everything.
#[test]
fn lines_across_buffer_fills_add_up_alike() {
    let plan = keyed();
    let copy: &[u8] = b"1\tsome longer value\n2\t\\N\n17\tx\\ty\n";
    let whole = rows(&plan, Some(0)).add_lines(copy).unwrap();
    let small = rows(&plan, Some(0))
        .add_lines(std::io::BufReader::with_capacity(7, copy))
        .unwrap();
    assert_eq!(whole, small);
    assert_eq!(whole.values().map(|p| p.rows).sum::<u64>(), 3);
}

/// At backup, psql reads in the dump's exported snapshot: the COPY runs inside a
/// repeatable-read transaction that imports it, so the digests see what the dump saw;
/// the password stays off the command line.
#[test]
fn psql_copies_in_the_exported_snapshot_and_never_shows_the_password() {
    let url = PgUrl::parse("postgresql://app:s3cret@db.example:5432/shop").unwrap();
    let cancel = Arc::new(Cancel::default());
    let psql = Psql::new("psql".into(), &url, "/nonexistent".into(), &cancel);
    let own = psql.args("COPY x TO STDOUT".into());
    assert!(
        !own.iter()
            .any(|a| a.contains("SNAPSHOT") || a.contains("BEGIN"))
    );
    let args = psql
        .in_snapshot("00000003-0000001B-1")
        .args("COPY x TO STDOUT".into());
    let commands: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--command="))
        .collect();
    assert_eq!(
        commands[1..],
        [
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
            "COPY x TO STDOUT",
            "COMMIT"
        ]
    );
    assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
}
