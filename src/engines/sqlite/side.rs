//! The `-wal` and `-shm` files SQLite creates beside a WAL database that had none when a
//! read-only connection of ours first reads it (SQLite needs them even to read). Left
//! behind, they belong to the drill's user, and the application, running as another
//! user, then fails with "attempt to write a readonly database". They are removed once the
//! last connection of ours to that database has closed, as SQLite's own last close would,
//! and only when they are the very files (same inode) that appeared while we had it open,
//! the `-wal` holds no frame, and no other connection has the database open.

use std::collections::HashMap;
use std::fs;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ffi};

/// SQLite's lock bytes (os_unix.c): PENDING, RESERVED and the SHARED range of the database,
/// and the "dead man switch" byte of the `-shm` every connection holds while it uses it.
const PENDING_BYTE: i64 = 0x4000_0000;
const DB_LOCKS: i64 = 2 + 510;
const SHM_DMS: i64 = 128;

/// A database some connection of ours has open: how many, and the side files that appeared.
#[derive(Default)]
struct Watched {
    open: usize,
    /// Both `-wal` and `-shm` were absent when the first of these connections opened it.
    absent: bool,
    /// Their (device, inode) once they appeared while we held the database open.
    ours: Option<[(u64, u64); 2]>,
}

static WATCHED: Mutex<Option<HashMap<PathBuf, Watched>>> = Mutex::new(None);

fn with_watched<T>(f: impl FnOnce(&mut HashMap<PathBuf, Watched>) -> T) -> T {
    let mut guard = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

pub(super) fn side_path(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

pub(super) use crate::guard::id_of;

/// Watches the side files of `db` for the connection `conn` just opened on it: when they
/// were absent, the first read (done here) creates them, and their inodes are recorded;
/// when the last connection of ours to `db` closes, they are removed again.
pub(super) fn watch(conn: &Connection, db: &Path) {
    let Ok(key) = fs::canonicalize(db) else {
        return;
    };
    let [wal, shm] = ["-wal", "-shm"].map(|s| side_path(&key, s));
    let first_read = with_watched(|all| {
        let w = all.entry(key.clone()).or_default();
        if w.open == 0 {
            // (Not opened to read its header: closing a descriptor of a database drops
            // every POSIX lock this process holds on it.)
            w.absent = id_of(&wal).is_none() && id_of(&shm).is_none();
        }
        w.open += 1;
        w.absent && w.ours.is_none()
    });
    if first_read {
        // The first read of a WAL database opens the WAL (creating both files) and holds
        // the database open, so no one else can remove them before we record them (a
        // rollback-journal database gets none). A failure is the caller's to find.
        let _ = conn.busy_timeout(Duration::from_secs(10));
        let _ = conn.query_row("PRAGMA schema_version", [], |_| Ok(()));
        let _ = conn.busy_timeout(Duration::ZERO);
        with_watched(|all| {
            if let (Some(w), Some(a), Some(b)) = (all.get_mut(&key), id_of(&wal), id_of(&shm)) {
                w.ours.get_or_insert([a, b]);
            }
        });
    }
    on_close(conn, Closed(key));
}

/// Dropped by SQLite when the connection closes, after its files are closed.
struct Closed(PathBuf);

impl Drop for Closed {
    fn drop(&mut self) {
        with_watched(|all| {
            let Some(w) = all.get_mut(&self.0) else {
                return;
            };
            w.open -= 1;
            if w.open == 0
                && let Some(ours) = all.remove(&self.0).and_then(|w| w.ours)
            {
                // Still under the lock: no connection of ours opens it meanwhile.
                remove_ours(&self.0, ours);
            }
        });
    }
}

/// Runs `closed`'s drop when `conn` closes: SQLite destroys a connection's functions after
/// closing its database files, so a function that is never called carries it.
fn on_close(conn: &Connection, closed: Closed) {
    unsafe extern "C" fn never(
        ctx: *mut ffi::sqlite3_context,
        _: i32,
        _: *mut *mut ffi::sqlite3_value,
    ) {
        // SAFETY: ctx is the live context SQLite passes.
        unsafe { ffi::sqlite3_result_null(ctx) }
    }
    unsafe extern "C" fn destroy(p: *mut std::ffi::c_void) {
        // SAFETY: p is the Box leaked below, destroyed exactly once by SQLite.
        drop(unsafe { Box::from_raw(p.cast::<Closed>()) });
    }
    let data = Box::into_raw(Box::new(closed)).cast();
    // SAFETY: the handle is open; on failure SQLite calls `destroy` itself (create_function_v2).
    unsafe {
        ffi::sqlite3_create_function_v2(
            conn.handle(),
            c"restore_drill_side_files".as_ptr(),
            0,
            ffi::SQLITE_UTF8,
            data,
            Some(never),
            None,
            None,
            Some(destroy),
        );
    }
}

/// Removes the `-wal` and `-shm` of `db` if they are `ours`, the `-wal` is empty and no
/// connection (of any process) has `db` open, holding SQLite's own locks while it does.
fn remove_ours(db: &Path, ours: [(u64, u64); 2]) {
    remove_if_unused(db, ours, true)
}

/// `remove_ours`; `writable` false skips the write-access way (for tests run as root).
pub(super) fn remove_if_unused(db: &Path, ours: [(u64, u64); 2], writable: bool) {
    let files = ["-wal", "-shm"].map(|s| side_path(db, s));
    let unchanged = || {
        [id_of(&files[0]), id_of(&files[1])] == ours.map(Some)
            && fs::metadata(&files[0]).is_ok_and(|m| m.len() == 0)
    };
    if !unchanged() {
        return;
    }
    let rw = writable.then(|| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(db)
    });
    if let Some(Ok(file)) = rw {
        // SQLite's EXCLUSIVE lock, as its own last close takes before deleting them: it
        // fails while any connection is open and keeps new ones out until `file` closes.
        if lock(&file, libc::F_WRLCK, PENDING_BYTE, DB_LOCKS) && unchanged() {
            let _ = fs::remove_file(&files[0]);
            let _ = fs::remove_file(&files[1]);
        }
    } else {
        remove_unwritable(db, &files, unchanged);
    }
}

/// Without write access to `db` (the drill runs as another user) its EXCLUSIVE lock is out
/// of reach. Instead: hold the `-shm`'s DMS byte (no connection can start using it), move
/// both files aside, and remove them only if then no connection holds `db`'s SHARED lock:
/// a connection opens the `-wal` only while it holds that lock, so none has them open, and
/// any later one finds them gone. Otherwise they are moved back.
fn remove_unwritable(db: &Path, files: &[PathBuf; 2], unchanged: impl Fn() -> bool) {
    let Ok(shm) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&files[1])
    else {
        return;
    };
    let Ok(dbf) = fs::File::open(db) else {
        return;
    };
    if !lock(&shm, libc::F_WRLCK, SHM_DMS, 1) || !unchanged() || in_use(&dbf) {
        return;
    }
    let aside = files
        .clone()
        .map(|f| side_path(&f, &format!(".gone-{}", std::process::id())));
    let moved: Vec<usize> = (0..2)
        .filter(|&i| fs::rename(&files[i], &aside[i]).is_ok())
        .collect();
    if moved.len() == 2 && !in_use(&dbf) {
        for f in &aside {
            let _ = fs::remove_file(f);
        }
    } else {
        for i in moved {
            let _ = rename_no_replace(&aside[i], &files[i]);
        }
    }
    drop(shm);
}

/// Takes an open-file-description lock (it conflicts with every other lock, this
/// process's POSIX locks included) without waiting.
fn lock(file: &fs::File, kind: i32, start: i64, len: i64) -> bool {
    fcntl_lock(file, libc::F_OFD_SETLK, kind, start, len).is_some()
}

/// Whether any connection holds a lock on `db` (SHARED at least).
fn in_use(db: &fs::File) -> bool {
    fcntl_lock(db, libc::F_OFD_GETLK, libc::F_WRLCK, PENDING_BYTE, DB_LOCKS)
        .is_none_or(|found| found != libc::F_UNLCK)
}

fn fcntl_lock(file: &fs::File, cmd: i32, kind: i32, start: i64, len: i64) -> Option<i32> {
    // SAFETY: a zeroed flock is valid; OFD commands require l_pid 0.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = start;
    fl.l_len = len;
    // SAFETY: the descriptor is open and fl lives across the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    (r == 0).then_some(fl.l_type as i32)
}

fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
