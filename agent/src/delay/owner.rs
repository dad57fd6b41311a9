//! The process a delay line lives for (`vnet-te-delay run --exit-with PID`): a container's
//! init. The line sits in the container's network namespace and would keep it alive after the
//! container is gone; so it watches its owner and ends (releasing what it holds) once the
//! owner has exited.
//!
//! A process is told by its PID and its start time (field 22 of `/proc/PID/stat`): a PID
//! reused by a later process is not the owner. A zombie has exited already.

use std::time::Duration;

/// How often the owner is looked at: a line outlives its container by at most this.
pub const POLL: Duration = Duration::from_millis(100);

/// The state letter and start time (clock ticks since boot) in the text of `/proc/PID/stat`.
/// The command name (field 2) may hold spaces and parentheses: fields are counted after the
/// last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, start time field 22.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of process `pid` while it runs (not a zombie); None once it has exited.
pub fn started(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    match parse_stat(&text)? {
        ('Z' | 'X' | 'x', _) => None,
        (_, start) => Some(start),
    }
}

/// The process `pid`, as it runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    start: u64,
}

impl Owner {
    /// The running process `pid`; an error when there is none.
    pub fn of(pid: u32) -> Result<Owner, String> {
        match started(pid) {
            Some(start) => Ok(Owner { pid, start }),
            None => Err(format!("process {pid} (the owner given with --exit-with) is not running")),
        }
    }

    /// Whether it still runs (the same process, not a later one with its PID).
    pub fn alive(&self) -> bool {
        started(self.pid) == Some(self.start)
    }

    /// Returns once the owner has exited (polling every [`POLL`]).
    pub fn wait_gone(&self) {
        while self.alive() {
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let text = "4242 (a) b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat(text), Some(('S', 987654)));
        assert_eq!(parse_stat("1 (init) Z 0"), None, "too short");
        assert_eq!(parse_stat("no name here"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_pid_beyond_the_kernels_limit_is_not() {
        let me = Owner::of(std::process::id()).unwrap();
        assert!(me.alive());
        // PIDs stop at 2^22.
        let e = Owner::of(u32::MAX).unwrap_err();
        assert!(e.contains("process 4294967295"), "{e}");
        let gone = Owner { pid: me.pid, start: me.start + 1 };
        assert!(!gone.alive(), "another start time is another process");
    }
}
