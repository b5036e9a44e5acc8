//! SQLite drills end to end: real files, the real binary.

use super::*;

pub const BASE: &str = r#"
version = 1
[drill]
name = "t"
[vars]
source = "src.db"
[gates]
rto = "15m"
[[steps]]
id = "backup"
kind = "backup"
engine = "sqlite"
source = "{{ vars.source }}"
output = "{{ drill.workdir }}/b/backup.db"
[[steps]]
id = "manifest"
kind = "checksum"
files = ["{{ steps.backup.path }}"]
manifest = "{{ drill.workdir }}/b/SHA256SUMS"
#BEFORE_VERIFY#
[[steps]]
id = "verify_backup"
kind = "checksum"
verify = "{{ steps.manifest.manifest }}"
[[steps]]
id = "restore"
kind = "restore"
engine = "sqlite"
from = "{{ steps.backup.path }}"
target = "{{ drill.workdir }}/r/restored.db"
#AFTER_RESTORE#
[[steps]]
id = "verify"
kind = "sql"
engine = "sqlite"
database = "{{ steps.restore.target }}"
[[steps.checks]]
name = "tables"
builtin = "tables_exist"
tables = ["services", "dispatches"]
[[steps.checks]]
name = "counts"
builtin = "table_counts"
compare_to = "{{ steps.backup.table_counts }}"
[[steps.checks]]
name = "integrity"
builtin = "integrity"
[[steps.checks]]
name = "fks"
builtin = "foreign_keys"
[[steps.checks]]
name = "indexes"
builtin = "indexes_exist"
indexes = ["idx_dispatches_service"]
#MORE#
[[cleanup]]
id = "mark"
kind = "exec"
run = "touch cleaned"
"#;

/// The base drill with text spliced in at the markers.
pub fn drill(before_verify: &str, after_restore: &str, more: &str) -> Drill {
    let toml = BASE
        .replace("#BEFORE_VERIFY#", before_verify)
        .replace("#AFTER_RESTORE#", after_restore)
        .replace("#MORE#", more);
    let d = Drill::new(&toml);
    make_db(&d.path().join("src.db"), 500);
    d
}

#[test]
fn a_good_backup_restores_and_passes() {
    let out = drill("", "", "").run().expect_code(0);
    let r = out.record();
    assert_eq!(r["status"], "passed");
    assert_eq!(r["schema"], "restore-drill/v1");
    assert_eq!(out.step("verify")["checks"].as_array().unwrap().len(), 5);
    assert_eq!(out.step("restore")["outputs"]["table_counts"]["dispatches"], 500);
    assert!(out.path().join("cleaned").exists());
    assert!(out.report().contains("✅ PASSED"), "{}", out.report());
    let workdir = r["workdir"].as_str().unwrap();
    assert!(!Path::new(workdir).exists(), "workdir {workdir} left behind");
}
