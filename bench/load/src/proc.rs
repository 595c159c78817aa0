//! CPU and memory from /proc: the generator's own CPU share (so that it never becomes the limit
//! unnoticed), the machine's, and the target's process tree (CPU time and PSS, as
//! `bench/measure_rss.sh` reads them).

use std::fs;

/// Clock ticks per second of /proc's CPU times (`CLK_TCK`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime of one process, in seconds (children's not included).
fn process_cpu(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// The generator's own CPU seconds.
pub fn own_cpu() -> f64 {
    process_cpu(std::process::id()).unwrap_or(0.0)
}

/// Busy CPU seconds of the whole machine (all cores).
pub fn host_cpu() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: f64 = values
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / ticks_per_second()
}

/// `pids` and all their descendants.
fn tree(pids: &[u32]) -> Vec<u32> {
    let mut all = Vec::new();
    let mut pending = pids.to_vec();
    while let Some(pid) = pending.pop() {
        all.push(pid);
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    all
}

/// CPU seconds used so far by the process trees of `pids`.
pub fn tree_cpu(pids: &[u32]) -> f64 {
    tree(pids).into_iter().filter_map(process_cpu).sum()
}

/// (PSS, RSS) in KiB of the process trees of `pids`.
pub fn tree_memory(pids: &[u32]) -> (u64, u64) {
    let field = |rollup: &str, name: &str| -> u64 {
        rollup
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    tree(pids)
        .into_iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .fold((0, 0), |(pss, rss), rollup| {
            (pss + field(&rollup, "Pss:"), rss + field(&rollup, "Rss:"))
        })
}
