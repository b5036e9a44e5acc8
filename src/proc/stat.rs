//! What `/proc` says about a process: its state, parent, group and start time (which,
//! with the boot id, tells a process from a later one that was given the same pid), its
//! environment and its working directory.

use std::path::PathBuf;

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// `R`, `S`, `D`, `T`, `Z` (zombie: exited, not yet reaped), ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Clock ticks since boot when the process started.
    pub start_time: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// `/proc/<pid>/stat`, parsed; None when the process does not exist (any more).
pub fn stat(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    parse(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

/// The command name may hold spaces and parentheses: the fields start after the last `)`.
fn parse(pid: i32, text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5) (state); starttime is field 22.
    Some(Stat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// When the process started (clock ticks since boot), None when it does not exist.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// The program's name (`/proc/<pid>/comm`), e.g. `sh`, `pg_dump`.
pub fn comm(pid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim_end().to_string())
}

/// This boot of the machine: start times and pids mean nothing across boots.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string())
}

/// Every process now, as far as `/proc` lets us see.
pub fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// The live (not zombie) members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<Stat> {
    if pgid <= 1 {
        return Vec::new();
    }
    all()
        .into_iter()
        .filter(|s| s.pgrp == pgid && !s.is_zombie())
        .collect()
}

/// Whether the process's environment holds `key=value` (false when it cannot be read,
/// e.g. another user's process).
pub fn environ_has(pid: i32, key: &str, value: &str) -> bool {
    let needle = format!("{key}={value}");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|b| *b == 0)
            .any(|entry| entry == needle.as_bytes())
    })
}

/// The process's working directory.
pub fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (a b) c)) S 1 40 40 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse(42, line).unwrap();
        assert_eq!(
            (s.state, s.ppid, s.pgrp, s.start_time),
            ('S', 1, 40, 987654)
        );
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        // SAFETY: getpgrp cannot fail.
        assert_eq!(s.pgrp, unsafe { libc::getpgrp() });
        assert!(!s.is_zombie());
        assert!(boot_id().is_some_and(|b| !b.is_empty()));
        assert!(stat(0).is_none());
    }
}
