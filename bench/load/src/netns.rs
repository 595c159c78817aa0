//! Many source addresses: a network namespace of the generator's own, with addresses of one
//! prefix on its loopback. The generator enters it, and starts the target in it, so that no
//! packet leaves the namespace.

use std::fs::File;
use std::io::Write as _;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The namespace `hotline-load-<pid>`; deleted on drop.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates the namespace with `lo` up and `count` addresses `prefix::1`, `prefix::2`, … on
    /// it (`nodad`: usable at once). Needs root.
    pub fn create(prefix: Ipv6Addr, count: u32) -> anyhow::Result<(Namespace, Vec<Ipv6Addr>)> {
        let name = format!("hotline-load-{}", std::process::id());
        ip(&["netns", "add", &name], None)
            .context("cannot create a network namespace (`ip netns add` needs root)")?;
        let namespace = Namespace { name };
        let base = u128::from(prefix);
        let addresses: Vec<Ipv6Addr> = (1..=u128::from(count))
            .map(|n| Ipv6Addr::from(base + n))
            .collect();
        let mut batch = String::from("link set lo up\n");
        for address in &addresses {
            batch.push_str(&format!("address add {address}/128 dev lo nodad\n"));
        }
        ip(&["-n", &namespace.name, "-batch", "-"], Some(&batch))?;
        Ok((namespace, addresses))
    }

    /// Moves the calling thread into the namespace: call it before any other thread starts,
    /// so that the runtime's threads and sockets are all inside.
    pub fn enter(&self) -> anyhow::Result<()> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
        // SAFETY: setns on a namespace file descriptor that stays open for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns {path}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// `sh -c SCRIPT` inside the namespace (`ip netns exec` execs it: the child's pid is the
    /// shell's, and `exec` in the script makes it the target's).
    pub fn command(&self, script: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, "sh", "-c", script]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name], None);
    }
}

fn ip(args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip` (apt-get install iproute2)")?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
