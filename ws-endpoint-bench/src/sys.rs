//! What the harness reads from and sets in the operating system: a process's CPU time and RSS
//! from `/proc`, the machine's CPU model, CPU affinity, and the open-file limit.

use std::{fs, io};

/// CPU seconds (user + system, all threads, `utime + stime` of `/proc/PID/stat`) used so far by
/// process `pid`.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let (user, system) = cpu_user_system_seconds(pid)?;
    Ok(user + system)
}

/// User and system CPU seconds (`utime`, `stime` of `/proc/PID/stat`, in clock ticks) used so
/// far by process `pid`: the framework's cost shows in user time, the kernel's TCP work in
/// system time.
pub fn cpu_user_system_seconds(pid: u32) -> io::Result<(f64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    let hz = clock_ticks_per_second();
    Ok((field(14)? as f64 / hz, field(15)? as f64 / hz))
}

/// CPU time (all threads) used so far by process `pid`, in nanoseconds, from its CPU-time
/// clock (`clock_getcpuclockid`): unlike `/proc/PID/stat`, not rounded to clock ticks, so it can
/// time a burst of a few milliseconds.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    // SAFETY: clock_getcpuclockid and clock_gettime write only to the locals passed to them.
    unsafe {
        let mut clock: libc::clockid_t = 0;
        let err = libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock);
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// CPU seconds the whole machine has spent busy so far (all CPUs; user, system, interrupts and
/// steal time from `/proc/stat`). Minus the server's and the load generator's own CPU time over
/// a measurement, it tells how much else ran meanwhile.
pub fn machine_busy_seconds() -> io::Result<f64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is included in user)
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Ok(busy as f64 / clock_ticks_per_second())
}

/// The number of CPUs of the machine (`processor` lines of `/proc/cpuinfo`).
pub fn cpu_count() -> usize {
    fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

/// Memory the kernel holds in TCP socket buffers, machine-wide (both ends of loopback
/// connections), in KiB (`mem` pages of the `TCP:` line of `/proc/net/sockstat`).
pub fn tcp_buffers_kib() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/net/sockstat")?;
    let pages: u64 = stat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.windows(2)
                .find(|w| w[0] == "mem")
                .and_then(|w| w[1].parse().ok())
        })
        .ok_or_else(|| io::Error::other("no TCP mem in /proc/net/sockstat"))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Ok(pages * page / 1024)
}

/// The CPU model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The CPUs this process may run on (its affinity mask), in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Restricts the calling thread (and the threads and processes it creates afterwards) to `cpu`.
///
/// Async-signal-safe (one system call), so it may run in a `pre_exec` hook.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; the pointer and size describe it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft open-file limit to `wanted` (raising the hard limit too if allowed), or as
/// far as the hard limit goes. Returns the soft limit now in force. Child processes inherit it,
/// so the servers the harness starts get the same limit.
pub fn raise_nofile_limit(wanted: u64) -> u64 {
    // SAFETY: rlimit is plain data; getrlimit / setrlimit read or write exactly one.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur as u64 >= wanted {
            return lim.rlim_cur as u64;
        }
        let both = libc::rlimit {
            rlim_cur: wanted as libc::rlim_t,
            rlim_max: (lim.rlim_max as u64).max(wanted) as libc::rlim_t,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &both) == 0 {
            return wanted;
        }
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return lim.rlim_max as u64;
        }
        lim.rlim_cur as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time_and_rss() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(!allowed_cpus().is_empty());
        assert!(machine_busy_seconds().unwrap() > 0.0);
        assert!(cpu_count() > 0);
        assert!(tcp_buffers_kib().is_ok());
        assert!(process_cpu_ns(pid).unwrap() > 0);
    }
}
