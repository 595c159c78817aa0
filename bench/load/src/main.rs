//! hotline-load: phones over TLS or TCP, what SIPp cannot do here (Debian's SIPp has no TLS).
//!
//! Each phone is one connection: it registers with Digest (MD5, the users CSV of `bench/`),
//! answers and sends CRLF keep-alives, re-registers, answers the calls it receives and places
//! calls with an SRTP offer. Tests climb a ladder of rates with `bench/run.sh`'s rules: a step
//! passes with no failure, every operation completed and ≥ 95 % of the target rate; the ladder
//! stops at the first failing step. Every step prints the generator's own CPU share, so that it
//! never becomes the limit unnoticed.

mod digest;
mod ladder;
mod netns;
mod phone;
mod proc;
mod sip;
mod tls;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Child;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rustls::pki_types::ServerName;

use crate::ladder::{Ladder, Target};
use crate::phone::{Settings, User};

#[derive(Parser)]
#[command(
    version,
    about = "SIP load over TLS or TCP: phones that register, keep alive and call"
)]
struct Cli {
    /// The registrar and proxy to load.
    #[arg(long, default_value = "[::1]:5161")]
    target: SocketAddr,
    #[arg(long, value_enum, default_value_t = Transport::Tls)]
    transport: Transport,
    /// SIP domain of request URIs and addresses of record (default: the target's address in
    /// brackets, as `bench/run.sh` uses).
    #[arg(long)]
    domain: Option<String>,
    /// The users CSV of `bench/` (a first line `SEQUENTIAL`, then `extension;password`).
    #[arg(long)]
    users: PathBuf,
    /// Phones, one connection each, for the first users of the CSV.
    #[arg(long, default_value_t = 100)]
    phones: usize,
    /// Phones connecting (TLS handshakes) at the same time while the phones come up.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Registration expiry asked for, seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// Send from many addresses: create a network namespace with `--addresses` addresses of
    /// this /64 (or longer) prefix on its loopback, run there, and start the target there
    /// with `--spawn`. Needs root.
    #[arg(long, requires = "spawn")]
    prefix: Option<Ipv6Addr>,
    #[arg(long, default_value_t = 256)]
    addresses: u32,
    /// Shell command that starts the target inside the namespace (its process is measured).
    #[arg(long, requires = "prefix")]
    spawn: Option<String>,
    /// Target processes whose CPU and memory (PSS, with their children) each step reports.
    #[arg(long = "pid", value_delimiter = ',')]
    pids: Vec<u32>,
    /// Seconds an operation may take before it counts as failed.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    test: Test,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tls,
    Tcp,
}

#[derive(Subcommand)]
enum Test {
    /// Connects and registers the phones, then holds them for SECONDS: CRLF pings every PING
    /// seconds and re-registrations every REFRESH seconds (spread evenly). Reports the target's
    /// memory with the phones registered, and every failed ping or refresh.
    Hold {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 30)]
        ping: u64,
        #[arg(long, default_value_t = 60)]
        refresh: u64,
        /// Registrations/s while the phones come up.
        #[arg(long, default_value_t = 500)]
        rate: u32,
    },
    /// Handshakes/s ladder: new connections, each a handshake, one CRLF ping and its pong.
    Handshake {
        #[command(flatten)]
        ladder: Ladder,
    },
    /// REGISTER/s ladder on the phones' established connections (REGISTER, 401, REGISTER, 200).
    Register {
        #[command(flatten)]
        ladder: Ladder,
    },
    /// Calls/s ladder between registered phones: INVITE, 407, ACK, INVITE, 180, 200, ACK,
    /// hold (re-INVITE, 200, ACK), BYE, 200; the callee phone answers over its own connection.
    Call {
        #[command(flatten)]
        ladder: Ladder,
        /// Milliseconds on hold before the BYE.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // Many addresses: a namespace of our own, entered before the runtime starts any thread.
    let mut namespace = None;
    let mut sources: Vec<IpAddr> = Vec::new();
    let mut spawned: Option<Child> = None;
    if let (Some(prefix), Some(script)) = (cli.prefix, &cli.spawn) {
        let (ns, addresses) = netns::Namespace::create(prefix, cli.addresses)?;
        ns.enter()?;
        let child = ns
            .command(script)
            .spawn()
            .context("cannot start the target")?;
        cli.pids.push(child.id());
        spawned = Some(child);
        sources = addresses.into_iter().map(IpAddr::V6).collect();
        namespace = Some(ns);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result =
        tokio::task::LocalSet::new().block_on(&runtime, run(&cli, &sources, spawned.is_some()));
    if let Some(mut child) = spawned {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    drop(namespace);
    result
}

async fn run(cli: &Cli, sources: &[IpAddr], wait_for_target: bool) -> anyhow::Result<()> {
    let users = read_users(&cli.users, cli.phones)?;
    let domain = cli
        .domain
        .clone()
        .unwrap_or_else(|| format!("[{}]", cli.target.ip()));
    let tls = match cli.transport {
        Transport::Tcp => None,
        Transport::Tls => {
            let host = domain.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_owned())
                .with_context(|| format!("{domain} is no TLS server name"))?;
            Some((phone::tls_connector(), name))
        }
    };
    let settings = Rc::new(Settings {
        target: cli.target,
        domain,
        tls,
    });
    if wait_for_target {
        wait_until_listening(cli.target).await?;
    }
    let target = Target {
        pids: cli.pids.clone(),
        settings,
        users,
        sources: sources.to_vec(),
        concurrency: cli.concurrency,
        expires: cli.expires,
        timeout: Duration::from_secs(cli.timeout),
    };
    match &cli.test {
        Test::Hold {
            seconds,
            ping,
            refresh,
            rate,
        } => {
            let (ping, refresh) = (Duration::from_secs(*ping), Duration::from_secs(*refresh));
            ladder::hold(&target, Duration::from_secs(*seconds), ping, refresh, *rate).await
        }
        Test::Handshake { ladder } => ladder.handshakes(&target).await,
        Test::Register { ladder } => ladder.registrations(&target).await,
        Test::Call { ladder, hold_ms } => {
            ladder.calls(&target, Duration::from_millis(*hold_ms)).await
        }
    }
}

/// The first `count` users of a `bench/` users CSV.
fn read_users(path: &PathBuf, count: usize) -> anyhow::Result<Vec<User>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the users CSV {}", path.display()))?;
    let users: Vec<User> = text
        .lines()
        .filter(|line| !matches!(line.trim(), "SEQUENTIAL" | "RANDOM" | "USER" | ""))
        .filter_map(|line| {
            let mut fields = line.split(';');
            let extension = fields.next()?.trim().to_owned();
            let password = fields.next()?.trim().to_owned();
            Some(User {
                extension,
                password,
            })
        })
        .take(count)
        .collect();
    if users.len() < count.max(2) {
        bail!(
            "{} holds {} users, {} phones need as many (and at least 2): make more with \
             bench/gen_users.sh or side-by-side.sh -u",
            path.display(),
            users.len(),
            count.max(2)
        );
    }
    Ok(users)
}

/// Waits (at most 30 s) until a target started with `--spawn` accepts connections.
async fn wait_until_listening(target: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(target).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the target does not accept connections on {target} after 30 s")
}
