//! Network namespaces, for tests that need sources other than `::1`: each [`Netns`] is a fresh
//! namespace of its own, with only its loopback up and the extra addresses the test puts on it.
//! Tests never touch the host's interfaces; they send only to their own namespaces.
//!
//! Creating a namespace needs root (CI runs as root): without it the test fails, it does not
//! skip.
//!
//! ```ignore
//! let netns = Netns::new();
//! netns.add_address("2001:db8:2::1".parse().unwrap());
//! let server = Server::start_in_netns(&netns, "[flood]\n…");
//! let sipp = netns.command("sipp").args([…]).spawn();
//! ```

use std::ffi::OsStr;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

use super::{Server, write_config};

/// A network namespace `hotline-test-<pid>-<n>` with its `lo` up; deleted on drop, also when
/// the test panics. Processes still running in it keep it alive until they exit, so drop the
/// [`Server`] and the peers first (declare the `Netns` before them).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up (`::1` only).
    pub fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("hotline-test-{}-{n}", std::process::id());
        let output = ip(&["netns", "add", &name]);
        assert!(
            output.status.success(),
            "cannot create the network namespace {name} (`ip netns add` needs root, as in CI): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `address/128` to the namespace's loopback, usable at once (`nodad`).
    pub fn add_address(&self, address: Ipv6Addr) {
        let address = format!("{address}/128");
        self.ip(&["-6", "address", "add", &address, "dev", "lo", "nodad"]);
    }

    /// `ip netns exec NAME PROGRAM`: a command that runs `program` inside the namespace. `ip`
    /// execs the program, so the child's pid is the program's own (signals reach it).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `work` on a thread of its own that has entered the namespace, and returns what it
    /// returns: sockets it opens are the namespace's (and stay so on any thread).
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                self.enter();
                work()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) {
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        assert_eq!(
            setns(file.as_raw_fd(), CLONE_NEWNET),
            0,
            "setns {path}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Runs `ip ARGS…` inside the namespace and asserts it succeeded.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-netns", self.name.as_str()];
        all.extend_from_slice(args);
        let output = ip(&all);
        assert!(
            output.status.success(),
            "ip {}: {}",
            all.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let output = ip(&["netns", "delete", &self.name]);
        if !output.status.success() {
            eprintln!(
                "cannot delete the network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
}

unsafe extern "C" {
    /// unshare(2) of the C library that std links anyway: std cannot enter a new namespace.
    safe fn unshare(flags: i32) -> i32;
    /// setns(2), to enter a namespace of its name.
    safe fn setns(fd: i32, nstype: i32) -> i32;
}

const CLONE_NEWNET: i32 = 0x4000_0000;

/// Runs `body` on a thread of its own in a new network namespace whose loopback interface has
/// `addresses` besides `::1`, so that clients can come from several sources while the server
/// listens on `[::1]` as always. Processes started from that thread (the server, `ip`) inherit
/// the namespace; the rest of the test process keeps the host's.
pub fn in_network_namespace(addresses: &[&str], body: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            assert_eq!(
                unshare(CLONE_NEWNET),
                0,
                "unshare(CLONE_NEWNET): {}; this test needs root",
                io::Error::last_os_error()
            );
            let up = ip(&["link", "set", "lo", "up"]);
            assert!(up.status.success(), "ip link set lo up: {up:?}");
            for address in addresses {
                let added = ip(&["-6", "addr", "add", &format!("{address}/128"), "dev", "lo"]);
                assert!(added.status.success(), "ip addr add {address}: {added:?}");
            }
            body();
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (iproute2): {e}"))
}

impl Server {
    /// Starts a server inside `netns`, listening on `[::]` (ephemeral ports), so that every
    /// address of the namespace reaches it: [`Server::address`] gives `[::]:PORT`, send to
    /// `[::1]:PORT` or to any address added to the namespace. The data directory stays on the
    /// host's filesystem, so [`Server::hotline`] and the user helpers work from outside.
    /// `extra_toml` is as for [`Server::start`] (the flood limits are raised out of the way
    /// unless it has a `[flood]` table). [`Server::restart`] would start it again outside the
    /// namespace: do not use it with such a server.
    pub fn start_in_netns(netns: &Netns, extra_toml: &str) -> Server {
        let dir = TempDir::new().expect("temporary directory");
        let config = write_config(dir.path(), "[::]", extra_toml);
        let command = netns.command(env!("CARGO_BIN_EXE_hotline"));
        Server::spawn(command, dir, config)
    }
}
