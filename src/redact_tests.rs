use super::*;

fn with(secrets: &[&str]) -> Redactor {
    let r = Redactor::default();
    for s in secrets {
        r.add(s);
    }
    r
}

#[test]
fn a_credentials_name_is_told_from_a_word_that_only_holds_one() {
    for name in [
        "password",
        "PGPASSWORD",
        "MYSQL_PWD",
        "passphrase",
        "secret_key",
        "access_key",
        "api-key",
        "X-Auth-Token",
        "Authorization",
        "auth",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "sig",
        "age_identity",
        "private_key",
        "Cookie",
        "pass",
    ] {
        assert!(is_secret_name(name), "{name} is a credential's name");
    }
    for name in [
        "passed", "author", "bypass", "compass", "url", "sign_key", "signal",
    ] {
        assert!(!is_secret_name(name), "{name} is not a credential's name");
    }
}

#[test]
fn redacts_nested_strings_and_keys_longest_first() {
    let r = with(&["hunter2", "hunter2hunter2"]);
    let mut v = serde_json::json!({"a": ["postgres://u:hunter2hunter2@h/db"], "b": "x hunter2", "hunter2": 1});
    assert!(r.redact_value(&mut v));
    assert_eq!(
        v,
        serde_json::json!({"a": ["postgres://u:***@h/db"], "b": "x ***", "***": 1})
    );
    assert!(!r.redact_value(&mut v), "nothing left to replace");
}

#[test]
fn redacts_every_percent_encoded_spelling() {
    let r = with(&["p@ss/w:rd!"]);
    for url in [
        "mysql://u:p%40ss%2Fw%3Ard%21@h/db",
        "mysql://u:p%40ss%2fw%3ard!@h/db",
        "mysql://u:p%40ss/w:rd!@h/db",
        "mysql://u:%70%40ss/w:rd%21@h/db",
    ] {
        assert_eq!(r.redact(url), "mysql://u:***@h/db", "{url}");
    }
    assert_eq!(r.redact("a p@ss/w:rd! b"), "a *** b");
    // Not a spelling of it: left alone.
    assert_eq!(r.redact("p%40ss%2Fw%3Ard"), "p%40ss%2Fw%3Ard");
    assert_eq!(with(&["two words"]).redact("q=two+words&x=1"), "q=***&x=1");
}

#[test]
fn redacts_quoted_and_trimmed_forms() {
    let r = with(&["say \"hi\"\\now\n"]);
    let quoted = serde_json::to_string("token=say \"hi\"\\now\n").unwrap();
    assert_eq!(r.redact(&quoted), "\"token=***\"");
    assert_eq!(r.redact(&format!("{:?}", "say \"hi\"\\now\n")), "\"***\"");
    assert_eq!(r.redact("x say \"hi\"\\now y"), "x *** y");
}

#[test]
fn keeps_text_valid_around_multibyte_chars() {
    let r = with(&["gëhéim"]);
    assert_eq!(r.redact("ä g%C3%ABh%c3%a9im ö gëhéim"), "ä *** ö ***");
    assert_eq!(r.redact("100% sure"), "100% sure");
    assert_eq!(r.redact("ends with %"), "ends with %");
    assert_eq!(r.redact("ends with %4"), "ends with %4");
}

/// A url's password is masked with no `[secrets]` at all, wherever the url sits.
#[test]
fn masks_the_password_of_any_url() {
    let r = Redactor::default();
    let cases = [
        (
            "GET http://drill:pw@127.0.0.1:1/h?x",
            "GET http://drill:***@127.0.0.1:1/h?x",
        ),
        ("postgres://u:p@ss@h", "postgres://u:***@h"),
        (
            "\"mysql://u:pw@h\", x://a:b@c d",
            "\"mysql://u:***@h\", x://a:***@c d",
        ),
        (
            "ssh://git@host/x http://h:80/a@b",
            "ssh://git@host/x http://h:80/a@b",
        ),
        ("x://u:@h x://u:***@h ://", "x://u:@h x://u:***@h ://"),
        ("ü://ü:ö@ä", "ü://ü:***@ä"),
        (
            "POST https://ntfy.sh/t?auth=tk_9x&x=1 failed",
            "POST https://ntfy.sh/t?auth=***&x=1 failed",
        ),
        (
            "\"http://h/hook?a=1&Token=t0k&api_key=k#f\" http://u:p@h/?next=http://v:w@i/?token=z",
            "\"http://h/hook?a=1&Token=***&api_key=***#f\" http://u:***@h/?next=http://v:***@i/?token=***",
        ),
        ("http://h/?token=&auth=***", "http://h/?token=&auth=***"),
    ];
    for (text, masked) in cases {
        assert_eq!(r.redact(text), masked, "{text}");
    }
    assert!(matches!(r.redact_cow("http://h/a:b@c"), Cow::Borrowed(_)));
}

#[test]
fn a_credential_written_in_a_line_or_a_table_is_not_shown() {
    let stars = |v: &str| "*".repeat(v.chars().count());
    let line = r#"restic = { repository = "/r", password = "hunter22", x = 1 }"#;
    let want = r#"restic = { repository = "/r", password = "********", x = 1 }"#;
    assert_eq!(replace_secret_values(line, stars), want);
    let line = r#"s3 = { "secret_key" = 'a"b=c', access_key = "AK\"I" }, PGPASSWORD="pw""#;
    let want = r#"s3 = { "secret_key" = '*****', access_key = "*****" }, PGPASSWORD="**""#;
    assert_eq!(replace_secret_values(line, stars), want);
    for kept in [
        r#"password = "{{ secrets.pw }}""#,
        r#"output = "out/a.db", passphrase = """#,
        "password = 1",
        "x == 'password'",
        r#"password = "unterminated"#,
    ] {
        let masked = replace_secret_values(kept, stars);
        assert!(
            !masked.contains('*') || kept.contains("unterminated"),
            "{masked}"
        );
    }
    let mut step = serde_json::json!({
        "restic": {"repository": "/r", "password": "hunter22"},
        "headers": {"Authorization": "Bearer t0k3n", "Accept": "text/plain"},
        "env": {"PGPASSWORD": "<secret>", "HOME": "/root"},
        "s3": {"secret_key": "", "region": "eu"},
    });
    mask_secret_fields(&mut step, "<secret>");
    assert_eq!(
        step,
        serde_json::json!({
            "restic": {"repository": "/r", "password": "***"},
            "headers": {"Authorization": "***", "Accept": "text/plain"},
            "env": {"PGPASSWORD": "<secret>", "HOME": "/root"},
            "s3": {"secret_key": "", "region": "eu"},
        })
    );
}

#[test]
fn short_values_are_not_secrets_worth_hiding() {
    let r = with(&["ab", "  x "]);
    assert!(r.is_empty());
    assert_eq!(r.redact("ab x"), "ab x");
}

#[test]
fn scrub_replaces_inside_a_typed_value() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Item {
        name: String,
        detail: Option<String>,
        n: u32,
    }
    let r = with(&["s3cret"]);
    let mut item = Item {
        name: "uses s3cret".into(),
        detail: Some("s%33cret".into()),
        n: 7,
    };
    let value = r.scrub(&mut item).unwrap();
    assert_eq!(
        item,
        Item {
            name: "uses ***".into(),
            detail: Some("***".into()),
            n: 7
        }
    );
    assert_eq!(value["name"], "uses ***");
}

/// Issue 16: a secret in a map key alone is replaced, at any depth, and reported.
#[test]
fn redacts_secrets_in_object_keys_alone() {
    let r = with(&["hunter2"]);
    let mut v = serde_json::json!({"user hunter2": 1, "nested": [{"hunter%32": {"ok": 2}}]});
    assert!(r.redact_value(&mut v), "a key alone changed");
    assert_eq!(
        v,
        serde_json::json!({"user ***": 1, "nested": [{"***": {"ok": 2}}]})
    );
    let mut only_nested = serde_json::json!([{"x": {"hunter2": null}}]);
    assert!(r.redact_value(&mut only_nested));
    assert_eq!(only_nested, serde_json::json!([{"x": {"***": null}}]));
    let mut clean = serde_json::json!({"k": "v", "n": [1, true]});
    assert!(!r.redact_value(&mut clean));
}

/// Output reaches the log line by line: every line of a key file is a secret of its own.
#[test]
fn each_line_of_a_multi_line_secret_is_hidden() {
    let r = with(&["untrusted comment: key\nRWQf6LRCGA9i53mlYecO4IzT51\n"]);
    assert_eq!(
        r.redact("stdout: RWQf6LRCGA9i53mlYecO4IzT51"),
        "stdout: ***"
    );
    assert_eq!(r.redact("untrusted comment: key"), "***");
}

/// Text cut (and marked `…`) before it was redacted keeps no piece of a secret on
/// either side of the cut; text without a piece of one is left alone.
#[test]
fn a_secret_cut_by_an_ellipsis_leaves_no_piece() {
    let r = with(&["Hunter2Pw", "p@ss/w:rd"]);
    assert_eq!(r.redact("auth=Hun…"), "auth=***…");
    assert_eq!(r.redact("yyyHunter2…"), "yyy***…");
    assert_eq!(r.redact("…ter2Pw rest"), "…*** rest");
    assert_eq!(r.redact("a p@s… and …/w:rd b"), "a ***… and …*** b");
    assert_eq!(r.redact("x Hunter2Pw…"), "x ***…");
    assert_eq!(r.redact("plain… text…"), "plain… text…");
    assert!(matches!(r.redact_cow("zzz…"), Cow::Borrowed(_)));
}

/// A secret base64-encoded with what is around it (`curl -v`'s `Authorization: Basic`
/// of `user:secret`), at any of the three offsets, keeps none of the characters that
/// only its own bytes make.
#[test]
fn a_base64_encoded_secret_is_hidden_at_any_offset() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let secret = "Hunter2PwLongish";
    let r = with(&[secret]);
    for user in ["", "d", "dr", "drill:", "drill", "dril"] {
        for engine in [STANDARD, URL_SAFE] {
            let header = engine.encode(format!("{user}:{secret}"));
            let masked = r.redact(&format!("Authorization: Basic {header}"));
            assert!(masked.contains(MASK), "{user}: {masked}");
            // At most the characters the secret shares with its neighbours are left.
            let left = masked.len() - "Authorization: Basic ".len() - MASK.len();
            assert!(left <= 4 * (user.len() + 1) / 3 + 4 + 3, "{user}: {masked}");
        }
    }
    assert_eq!(r.redact("SGVsbG8gd29ybGQ="), "SGVsbG8gd29ybGQ=");
}

/// A tool that changes a secret's case (`tr a-z A-Z`) shows it all the same.
#[test]
fn a_secret_in_another_case_is_hidden() {
    let r = with(&["Hunter2Pw", "gëhéim"]);
    assert_eq!(r.redact("HUNTER2PW hunter2pw hUnTeR2pW"), "*** *** ***");
    assert_eq!(r.redact("GëHéIM gËhéim"), "*** gËhéim");
}

/// A secret quoted by another JSON encoder (Python's ASCII-only, Go's HTML-safe, PHP's
/// escaped slashes) or by a web page is the secret all the same.
#[test]
fn a_secret_quoted_by_other_encoders_is_hidden() {
    let r = with(&["gë/h&<éim>\"🔑"]);
    for quoted in [
        r#"{"pw": "g\u00eb/h&<\u00e9im>\"\ud83d\udd11"}"#,
        r#"{"pw":"gë/h\u0026\u003céim\u003e\"🔑"}"#,
        r#"{"pw":"g\u00eb\/h&<\u00e9im>\"\ud83d\udd11"}"#,
        "<td>gë/h&amp;&lt;éim&gt;&quot;🔑</td>",
    ] {
        let masked = r.redact(quoted);
        assert!(masked.contains(MASK) && !masked.contains("im"), "{masked}");
    }
}

/// The credentials of a step's fields: every string whose name says it is one, at any
/// depth; an `Authorization` header's scheme is not secret.
#[test]
fn a_steps_credentials_are_its_credential_fields() {
    let step = serde_json::json!({
        "run": "true",
        "restic": {"repository": "/r", "password": "Lit-Pw"},
        "headers": {"Authorization": "Bearer t0k3n", "Accept": "text/plain"},
        "env": {"PGPASSWORD": "pg-pw", "HOME": "/root"},
    });
    let mut found = secret_field_values(&step);
    found.sort();
    assert_eq!(found, ["Bearer t0k3n", "Lit-Pw", "pg-pw"]);
    assert_eq!(credentials_of("Bearer t0k3n"), Some("t0k3n"));
    assert_eq!(credentials_of("my pass phrase"), Some("my pass phrase"));
    assert_eq!(
        credentials_of("AGE-SECRET-KEY-1QQ"),
        Some("AGE-SECRET-KEY-1QQ")
    );
    for path in ["/etc/keys/age.txt", "./id.txt", "~/.age/key"] {
        assert_eq!(credentials_of(path), None, "{path}");
    }
}
