use super::*;

/// The hash of a row of `values` (None: NULL; Some: text).
fn row(values: &[Option<&str>]) -> u128 {
    let mut r = RowBytes::default();
    for v in values {
        match v {
            None => r.null(),
            Some(t) => r.text(t.as_bytes()),
        }
    }
    r.hash()
}

fn sum(rows: &[u128]) -> Part {
    let mut p = Part::default();
    for h in rows {
        p.add_row(*h);
    }
    p
}

#[test]
fn the_sum_does_not_depend_on_the_order_of_rows_nor_of_parts() {
    let rows: Vec<u128> = (0..50).map(|i| row(&[Some(&i.to_string())])).collect();
    let mut reversed = rows.clone();
    reversed.reverse();
    assert_eq!(sum(&rows), sum(&reversed));
    let (a, b) = rows.split_at(17);
    let mut parts = sum(b);
    parts.add(sum(a));
    assert_eq!(parts, sum(&rows));
}

#[test]
fn null_empty_text_and_empty_blob_differ() {
    let mut blob = RowBytes::default();
    blob.blob(b"");
    assert_ne!(row(&[None]), row(&[Some("")]));
    assert_ne!(row(&[Some("")]), blob.hash());
    // Column boundaries count: ("ab", "") is not ("a", "b").
    assert_ne!(row(&[Some("ab"), Some("")]), row(&[Some("a"), Some("b")]));
    let (mut int, mut real) = (RowBytes::default(), RowBytes::default());
    int.integer(1);
    real.real(1.0);
    assert_ne!(int.hash(), real.hash());
    let (mut zero, mut minus_zero) = (RowBytes::default(), RowBytes::default());
    zero.real(0.0);
    minus_zero.real(-0.0);
    assert_ne!(zero.hash(), minus_zero.hash());
}

#[test]
fn a_duplicated_row_changes_the_digest_unlike_a_xor() {
    let a = row(&[Some("a")]);
    let b = row(&[Some("b")]);
    assert_ne!(sum(&[a, b, b]).sum, sum(&[a]).sum);
    assert_eq!(sum(&[a, b, b]).rows, 3);
}

#[test]
fn halves_added_up_by_a_server_combine_modulo_2_128() {
    // Two rows whose hashes are hi:lo = 1:-1 and 2:5 (signed halves): 3 * 2^64 + 4.
    let p = Part::from_halves(2, "3", "4").unwrap();
    assert_eq!(p.sum, (3u128 << 64) + 4);
    let wrapped = Part::from_halves(1, "-1", "-1").unwrap();
    assert_eq!(wrapped.sum, u128::MAX - (1u128 << 64) + 1 - 1);
    assert!(Part::from_halves(1, "x", "0").is_err());
}

fn orders(values: &[i64]) -> TableDigest {
    let key = KeyRange {
        column: "id".into(),
        min: 1,
        max: 160,
    };
    let plan = Plan::new("orders", Some(key), None);
    let mut parts: BTreeMap<i64, Part> = BTreeMap::new();
    for (id, v) in values.iter().enumerate() {
        let id = id as i64 + 1;
        let bucket = if id > 160 { BUCKETS } else { (id - 1) / 10 };
        let mut r = RowBytes::default();
        r.integer(id);
        r.integer(*v);
        parts.entry(bucket).or_default().add_row(r.hash());
    }
    TableDigest::new(plan, parts)
}

#[test]
fn a_changed_value_is_narrowed_to_its_key_range() {
    let source = orders(&[7; 160]);
    assert_eq!(source.plan.key.as_ref().unwrap().width, 10);
    assert_eq!(source.difference(&orders(&[7; 160])), None);
    let mut changed = [7; 160];
    changed[54] = 8; // id 55
    let diff = source.difference(&orders(&changed)).unwrap();
    assert!(diff.contains("160 rows hashed, source had 160"), "{diff}");
    assert!(diff.contains("first differing range: id 51..60"), "{diff}");
    let extra = source.difference(&orders(&[7; 161])).unwrap();
    assert!(extra.contains("id above 160"), "{extra}");
}

#[test]
fn a_digest_reads_back_from_its_output() {
    let source = orders(&[3; 160]);
    let json = source.to_json();
    assert_eq!(json["ranges"].as_array().unwrap().len(), BUCKETS as usize);
    let back = TableDigest::from_json("orders", &json).unwrap();
    assert_eq!(back.plan, source.plan);
    assert_eq!(back.total, source.total);
    assert_eq!(source.difference(&back), None);
    let plain = TableDigest::new(Plan::new("t", None, Some(0.5)), BTreeMap::new());
    assert_eq!(plain.plan.sample, None, "no key, no sample");
    let back = TableDigest::from_json("t", &plain.to_json()).unwrap();
    assert_eq!(back.plan, plain.plan);
    assert!(TableDigest::from_json("t", &json!({"rows": 1})).is_err());
}

#[test]
fn the_sample_is_sql_of_the_key_and_the_ranges_are_spans_of_it() {
    let key = KeyRange {
        column: "id".into(),
        min: -5,
        max: 10,
    };
    let plan = Plan::new("t", Some(key), Some(0.05));
    assert_eq!(
        plan.sample_sql("k").unwrap(),
        "(((k) % 10007 + 10007) % 10007) * 7919 % 10007 < 501"
    );
    // -1 below the first range, 16 (BUCKETS) above the last, one key a range here.
    let ranges: Vec<i64> = [-6, -5, 0, 10, 11, i64::MAX]
        .map(|k| plan.bucket_of(k))
        .to_vec();
    assert_eq!(ranges, [-1, 0, 5, 15, 16, 16]);
    let whole = Plan::new("t", None, None);
    assert_eq!(whole.bucket_of(42), 0);
    assert_eq!(whole.sample_sql("k"), None);
}

fn backup_step(fields: &str) -> crate::playbook::Step {
    toml::from_str(&format!("id = \"b\"\nkind = \"backup\"\n{fields}")).unwrap()
}

#[test]
fn a_sample_needs_digests_and_a_fraction_of_the_rows() {
    assert_eq!(asked(&backup_step("")).unwrap(), None);
    assert_eq!(asked(&backup_step("digests = false")).unwrap(), None);
    assert_eq!(asked(&backup_step("digests = true")).unwrap(), Some(None));
    let sampled = asked(&backup_step("digests = true\nsample = 0.05")).unwrap();
    assert_eq!(sampled, Some(Some(0.05)));
    let alone = asked(&backup_step("sample = 0.05")).unwrap_err();
    assert!(
        alone.to_string().contains("applies to `digests = true`"),
        "{alone}"
    );
    for bad in ["0.0", "1.5", "-0.1", "nan"] {
        let e = asked(&backup_step(&format!("digests = true\nsample = {bad}"))).unwrap_err();
        assert!(
            e.to_string().contains("above 0 and at most 1"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn pieces_between_bounds_cover_every_position_once() {
    let whole = Piece::default();
    assert_eq!(Piece::between(&[]), [whole]);
    let pieces = Piece::between(&[10, 20]);
    assert_eq!(
        pieces.iter().map(|p| (p.from, p.to)).collect::<Vec<_>>(),
        [(None, Some(10)), (Some(10), Some(20)), (Some(20), None)]
    );
    let sql = |p: &Piece| p.sql("k", |n| format!("'{n}'"));
    assert_eq!(sql(&whole), None);
    assert_eq!(sql(&pieces[0]).unwrap(), "k < '10'");
    assert_eq!(sql(&pieces[1]).unwrap(), "k >= '10' AND k < '20'");
    assert_eq!(sql(&pieces[2]).unwrap(), "k >= '20'");
}
