//! The generator's own CPU time, from `/proc/self/stat`.
//!
//! Why it exists: the generator shares the machine with the system under
//! test, so every report says what the generator itself cost per request;
//! a comparison whose generator eats a core is measuring the generator.
//! Linux only; elsewhere the numbers are simply absent.

use std::time::Duration;

/// Clock ticks per second of `/proc` times (`USER_HZ`, fixed at 100 by the
/// Linux ABI whatever the kernel's internal tick).
const USER_HZ: u64 = 100;

/// User + system CPU time this process has used so far.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Reads `utime + stime` from a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// from the last `)`.
pub fn parse_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        let line = "4242 (load test) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat(line), Some(Duration::from_millis(3_800)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_time().is_some());
        }
    }
}
