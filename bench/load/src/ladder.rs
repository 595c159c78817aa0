//! Rate ladders and the hold test, with `bench/run.sh`'s pass rules and report lines.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::phone::{self, Failure, Phone, Retransmissions, Settings, User};
use crate::proc;

/// A ladder of rates, one step each.
#[derive(Args)]
pub struct Ladder {
    /// Rates per second, one step each, lowest first (`500,1000,2000`).
    #[arg(long, value_delimiter = ',', required = true)]
    rates: Vec<u32>,
    /// Seconds of each step.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Re-runs of a failing step: on a shared, noisy machine a step passes if any attempt does.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Climb on after a failing step.
    #[arg(long)]
    keep_going: bool,
    /// Seconds of pause between steps.
    #[arg(long, default_value_t = 3)]
    gap: u64,
}

/// What is loaded, and with which phones.
pub struct Target {
    pub pids: Vec<u32>,
    pub settings: Rc<Settings>,
    pub users: Vec<User>,
    /// Source addresses to spread the phones over (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
    pub concurrency: usize,
    pub expires: u32,
    pub timeout: Duration,
}

impl Target {
    fn source(&self, i: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }

    fn memory(&self) -> String {
        let (pss, rss) = proc::tree_memory(&self.pids);
        format!("target_pss_kb={pss} target_rss_kb={rss}")
    }
}

/// A phone connected, or why not, by its index among the users.
type Connected = (usize, anyhow::Result<Rc<Phone>>);

type Operation = Pin<Box<dyn Future<Output = Result<Duration, Failure>>>>;

/// What one step (or one phase) did.
#[derive(Default)]
struct Tally {
    launched: u64,
    ok: u64,
    failures: BTreeMap<Failure, u64>,
    latencies: Vec<Duration>,
    /// From the first launch to the last.
    launching: Duration,
}

impl Tally {
    fn record(&mut self, result: Result<Duration, Failure>) {
        match result {
            Ok(latency) => {
                self.ok += 1;
                self.latencies.push(latency);
            }
            Err(why) => *self.failures.entry(why).or_default() += 1,
        }
    }

    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort_unstable();
        let at = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[at - 1].as_secs_f64() * 1000.0
    }

    fn failure_list(&self) -> String {
        let list: Vec<String> = self
            .failures
            .iter()
            .map(|(why, n)| format!("{why}: {n}"))
            .collect();
        list.join(", ")
    }
}

/// Launches `count` operations evenly at `rate`/s, then waits for them (until `drain` after
/// the last launch at most; what is unfinished then counts as failed).
async fn pace(
    rate: u32,
    count: u64,
    drain: Duration,
    mut launch: impl FnMut(u64) -> Operation,
) -> Tally {
    let tally = Rc::new(RefCell::new(Tally::default()));
    let running = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let mut launched = 0;
    while launched < count {
        let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as u64 + 1).min(count);
        while launched < due {
            let operation = launch(launched);
            let (tally, running) = (tally.clone(), running.clone());
            running.set(running.get() + 1);
            tokio::task::spawn_local(async move {
                let result = operation.await;
                tally.borrow_mut().record(result);
                running.set(running.get() - 1);
            });
            launched += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let launching = start.elapsed();
    let give_up = Instant::now() + drain;
    while running.get() > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tally = std::mem::take(&mut *tally.borrow_mut());
    tally.launched = launched;
    tally.launching = launching;
    if running.get() > 0 {
        *tally.failures.entry("unfinished").or_default() += running.get();
    }
    tally
}

/// Connects every phone, `concurrency` handshakes at a time; fails if one cannot connect.
async fn connect_all(
    target: &Target,
    retransmissions: &Rc<Retransmissions>,
) -> anyhow::Result<Vec<Rc<Phone>>> {
    let start = Instant::now();
    let mut phones: Vec<Option<Rc<Phone>>> = vec![None; target.users.len()];
    let mut connecting = JoinSet::new();
    let mut failures = 0;
    let mut finish = |joined: Option<Result<Connected, JoinError>>| match joined {
        Some(Ok((i, Ok(phone)))) => phones[i] = Some(phone),
        _ => failures += 1,
    };
    for (i, user) in target.users.iter().enumerate() {
        while connecting.len() >= target.concurrency {
            finish(connecting.join_next().await);
        }
        let (settings, user, source) = (target.settings.clone(), user.clone(), target.source(i));
        let retransmissions = retransmissions.clone();
        let timeout = target.timeout;
        connecting.spawn_local(async move {
            // A target that accepts and then stalls the handshake must not hang the run.
            let connect = Phone::connect(&settings, user, source, retransmissions);
            let connected = tokio::time::timeout(timeout, connect)
                .await
                .unwrap_or_else(|_| Err(anyhow!("no handshake within {timeout:?}")));
            (i, connected)
        });
    }
    while let Some(joined) = connecting.join_next().await {
        finish(Some(joined));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let phones: Vec<Rc<Phone>> = phones.into_iter().flatten().collect();
    println!(
        "# connected {} phones in {elapsed:.1} s ({:.0} handshakes/s, {} at a time); {failures} failed",
        phones.len(),
        phones.len() as f64 / elapsed,
        target.concurrency
    );
    if failures > 0 {
        bail!("{failures} phones could not connect (limits of the target or of `ulimit -n`?)");
    }
    Ok(phones)
}

/// Registers every phone once, at `rate`/s.
async fn register_all(target: &Target, phones: &[Rc<Phone>], rate: u32) -> anyhow::Result<()> {
    let (expires, timeout) = (target.expires, target.timeout);
    let mut tally = pace(rate, phones.len() as u64, timeout, |i| {
        let phone = phones[i as usize].clone();
        Box::pin(async move { phone.register(expires, Instant::now() + timeout).await })
    })
    .await;
    let p95 = tally.percentile_ms(0.95);
    println!(
        "# registered {} phones at {rate}/s: p95 {p95:.2} ms; failed {} {}",
        tally.ok,
        tally.failed(),
        tally.failure_list()
    );
    if tally.failed() > 0 {
        bail!("{} phones could not register", tally.failed());
    }
    Ok(())
}

/// CPU counters at the start of a step.
struct Clocks {
    wall: Instant,
    own: f64,
    host: f64,
    target: f64,
    retransmissions: u64,
}

impl Clocks {
    fn start(target: &Target, retransmissions: &Retransmissions) -> Clocks {
        Clocks {
            wall: Instant::now(),
            own: proc::own_cpu(),
            host: proc::host_cpu(),
            target: proc::tree_cpu(&target.pids),
            retransmissions: retransmissions.count(),
        }
    }
}

impl Ladder {
    pub async fn handshakes(&self, target: &Target) -> anyhow::Result<()> {
        let settings = target.settings.clone();
        let none = Rc::new(Retransmissions::default());
        let timeout = target.timeout;
        self.climb("handshake", target, &none, || {
            let settings = settings.clone();
            let sources = target.sources.clone();
            Box::new(move |i| {
                let settings = settings.clone();
                let source = (!sources.is_empty()).then(|| sources[i as usize % sources.len()]);
                Box::pin(async move {
                    phone::handshake(&settings, source, Instant::now() + timeout).await
                })
            })
        })
        .await
    }

    pub async fn registrations(&self, target: &Target) -> anyhow::Result<()> {
        let retransmissions = Rc::new(Retransmissions::default());
        let phones = Rc::new(connect_all(target, &retransmissions).await?);
        let (expires, timeout) = (target.expires, target.timeout);
        self.climb("register", target, &retransmissions, || {
            let phones = phones.clone();
            Box::new(move |i| {
                let phone = phones[i as usize % phones.len()].clone();
                Box::pin(async move { phone.register(expires, Instant::now() + timeout).await })
            })
        })
        .await
    }

    pub async fn calls(&self, target: &Target, hold: Duration) -> anyhow::Result<()> {
        let retransmissions = Rc::new(Retransmissions::default());
        let phones = Rc::new(connect_all(target, &retransmissions).await?);
        register_all(target, &phones, 500).await?;
        let timeout = target.timeout + hold;
        self.climb("call", target, &retransmissions, || {
            let phones = phones.clone();
            Box::new(move |i| {
                let n = phones.len();
                let caller = phones[i as usize % n].clone();
                let callee = phones[(i as usize + n / 2) % n].user.extension.clone();
                Box::pin(async move { caller.call(&callee, hold, Instant::now() + timeout).await })
            })
        })
        .await
    }

    /// Runs the ladder: each rate for `duration` seconds, `launcher()` making each step's
    /// operations; prints a line per step and the RESULT line of `bench/run.sh`.
    async fn climb(
        &self,
        name: &str,
        target: &Target,
        retransmissions: &Rc<Retransmissions>,
        launcher: impl Fn() -> Box<dyn FnMut(u64) -> Operation>,
    ) -> anyhow::Result<()> {
        println!(
            "## {name}/s, {} s per step, {} phones, target pids {:?}",
            self.duration,
            target.users.len(),
            target.pids
        );
        println!(
            "test        rate achieved      ok failed retrans   p50_ms   p95_ms   p99_ms   max_ms  \
             verdict target, generator, machine"
        );
        let mut best: Option<(u32, f64)> = None;
        let mut best_clean: Option<(u32, f64)> = None;
        let mut first = true;
        for &rate in &self.rates {
            let mut passed = false;
            for _ in 0..=self.retries {
                if !first {
                    tokio::time::sleep(Duration::from_secs(self.gap)).await;
                }
                first = false;
                let clocks = Clocks::start(target, retransmissions);
                let count = u64::from(rate) * self.duration;
                let mut tally = pace(
                    rate,
                    count,
                    target.timeout + Duration::from_secs(2),
                    launcher(),
                )
                .await;
                let wall = clocks.wall.elapsed().as_secs_f64();
                let retrans = retransmissions.count() - clocks.retransmissions;
                let seconds = tally.launching.as_secs_f64().max(self.duration as f64);
                let achieved = tally.ok as f64 / seconds;
                passed = tally.failed() == 0
                    && tally.ok == tally.launched
                    && achieved >= 0.95 * f64::from(rate);
                let target_cpu = proc::tree_cpu(&target.pids) - clocks.target;
                let per_op = match tally.ok {
                    0 => 0.0,
                    ok => target_cpu * 1e6 / ok as f64,
                };
                let (p50, p95) = (tally.percentile_ms(0.50), tally.percentile_ms(0.95));
                let (p99, max) = (tally.percentile_ms(0.99), tally.percentile_ms(1.0));
                println!(
                    "{name:<10} {rate:>5} {achieved:>8.1} {:>7} {:>6} {retrans:>7} {p50:>8.2} {p95:>8.2} \
                     {p99:>8.2} {max:>8.2}  {:<7} cpu={:.0}% cpu_us_per_op={per_op:.0} {} gen_cpu={:.0}% \
                     host_cpu={:.0}% load={}",
                    tally.ok,
                    tally.failed(),
                    if passed { "PASS" } else { "FAIL" },
                    target_cpu * 100.0 / wall,
                    target.memory(),
                    (proc::own_cpu() - clocks.own) * 100.0 / wall,
                    (proc::host_cpu() - clocks.host) * 100.0 / wall,
                    load_average(),
                );
                if tally.failed() > 0 {
                    println!("            failures: {}", tally.failure_list());
                }
                if passed {
                    best = Some((rate, p95));
                    if retrans == 0 {
                        best_clean = Some((rate, p95));
                    }
                    break;
                }
            }
            if !passed && !self.keep_going {
                break;
            }
        }
        let show = |step: Option<(u32, f64)>| match step {
            Some((rate, p95)) => format!("{rate}/s (p95 {p95:.2} ms)"),
            None => "none".to_owned(),
        };
        println!(
            "RESULT {name} max rate with 0 failures: {}; also without retransmissions: {}",
            show(best),
            show(best_clean)
        );
        Ok(())
    }
}

/// The hold test (see `Test::Hold`).
pub async fn hold(
    target: &Target,
    seconds: Duration,
    ping: Duration,
    refresh: Duration,
    rate: u32,
) -> anyhow::Result<()> {
    println!("# target before the phones: {}", target.memory());
    let retransmissions = Rc::new(Retransmissions::default());
    let phones = connect_all(target, &retransmissions).await?;
    register_all(target, &phones, rate).await?;
    let (pss_before, _) = proc::tree_memory(&target.pids);
    println!("# {} phones registered: {}", phones.len(), target.memory());
    let end = Instant::now() + seconds;
    let pings = Rc::new(Cell::new(0u64));
    let refreshes = Rc::new(RefCell::new(Tally::default()));
    let n = phones.len() as u32;
    let mut tasks = JoinSet::new();
    for (i, phone) in phones.iter().enumerate() {
        let i = i as u32;
        let (phone, pings) = (phone.clone(), pings.clone());
        tasks.spawn_local(every(ping * i / n, ping, end, move || {
            phone.ping();
            pings.set(pings.get() + 1);
            Box::pin(async {})
        }));
        let (phone, refreshes) = (phones[i as usize].clone(), refreshes.clone());
        let (expires, timeout) = (target.expires, target.timeout);
        tasks.spawn_local(every(refresh * i / n, refresh, end, move || {
            let (phone, refreshes) = (phone.clone(), refreshes.clone());
            Box::pin(async move {
                let result = phone.register(expires, Instant::now() + timeout).await;
                refreshes.borrow_mut().record(result);
            })
        }));
    }
    while tasks.join_next().await.is_some() {}
    // The last pings' pongs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pongs: u64 = phones.iter().map(|p| p.pongs.get()).sum();
    let closed = phones.iter().filter(|p| p.is_closed()).count();
    let mut refreshes = std::mem::take(&mut *refreshes.borrow_mut());
    let (pss_after, _) = proc::tree_memory(&target.pids);
    let p95 = refreshes.percentile_ms(0.95);
    println!(
        "# held {} phones for {} s: {} pings, {} pongs; {} refreshes ok (p95 {p95:.2} ms), {} failed {}; \
         {closed} connections closed; {}",
        phones.len(),
        seconds.as_secs(),
        pings.get(),
        pongs,
        refreshes.ok,
        refreshes.failed(),
        refreshes.failure_list(),
        target.memory()
    );
    let passed = refreshes.failed() == 0 && pongs == pings.get() && closed == 0;
    println!(
        "RESULT hold {} phones: {} (target PSS {pss_before} kB registered, {pss_after} kB at the end)",
        phones.len(),
        if passed { "PASS" } else { "FAIL" }
    );
    Ok(())
}

/// Runs `action` after `offset`, then every `period`, until `end`.
async fn every(
    offset: Duration,
    period: Duration,
    end: Instant,
    mut action: impl FnMut() -> Pin<Box<dyn Future<Output = ()>>>,
) {
    let mut next = Instant::now() + offset;
    while next < end {
        tokio::time::sleep_until(next).await;
        action().await;
        next += period;
    }
}

/// The machine's 1-minute load average, as `uptime` shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
