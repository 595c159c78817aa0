//! Linphone (Debian's `linphone-cli`: linphonec 5.1 on liblinphone, belle-sip and mbedtls), a
//! second softphone independent of baresip, registered over TLS with hotline and driven through
//! linphonec's command line on its stdin. Its output and its log (`-d 6`) are read line by line
//! from its stdout and stderr.
//!
//! Facts this driver is built on (see /work/shared/REFERENCE.md): mbedtls 2.28 cannot match an
//! IP address in a certificate, and hotline on `[::1]` names itself by address in Via and
//! Record-Route, so for calls the certificate's chain is verified against hotline's own
//! certificate as the only trusted root, without the name check (see [`Trust`]); linphonec needs a private `HOME` with `~/.local/share/linphone`; `use_ipv6` is dropped at the
//! first start unless `ipv6_migration_done=1`; it cannot accept TLS connections, so hotline
//! reaches it over the connection it registered on.

use std::io::{BufRead as _, BufReader, ErrorKind, Read, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{DOMAIN, Server, Transport};

/// How long to wait for a line of Linphone's output before failing.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(20);

/// A recorded voice that liblinphone ships (package `linphone-common`, a dependency of
/// `linphone-cli`), sent as the microphone's sound.
const VOICE: &str = "/usr/share/sounds/linphone/hello8000.wav";

/// Media encryption of the account.
#[derive(Clone, Copy, Debug)]
pub enum Media {
    /// SDES-SRTP, mandatory: RTP/SAVP with a=crypto, and only that accepted.
    SrtpMandatory,
    /// None: plain RTP/AVP.
    Plain,
}

/// What Linphone logs once a call's media is encrypted with SDES-SRTP.
pub const SRTP_NEGOTIATED: &str = "Negotiated media encryption is LinphoneMediaEncryptionSRTP";

/// How Linphone checks hotline's certificate.
#[derive(Clone, Copy, Debug)]
pub struct Trust<'a> {
    /// The only trusted root.
    pub root_ca: &'a Path,
    /// The name the certificate must carry: the account's proxy is then `<sip:NAME;maddr=::1>`,
    /// so that belle-sip connects to `::1` and checks NAME. `None` checks the chain only, as
    /// calls need: requests that follow hotline's Record-Route by address would otherwise
    /// open connections whose name check cannot pass.
    pub name: Option<&'a str>,
}

/// One linphonec process with its own configuration and `HOME`.
pub struct Linphone {
    pub extension: String,
    child: Child,
    stdin: ChildStdin,
    output: Arc<Output>,
    _dir: TempDir,
}

#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Linphone {
    /// Starts linphonec for `extension` with an account over TLS to `server`, checking its
    /// certificate as `trust` says; returns at once, before it registered.
    pub fn launch(
        server: &Server,
        extension: &str,
        password: &str,
        media: Media,
        trust: Trust<'_>,
    ) -> Linphone {
        let dir = TempDir::new().expect("temporary directory");
        let port = server.address(Transport::Tls).port();
        let (proxy, check_name) = match trust.name {
            Some(name) => (format!("<sip:{name}:{port};transport=tls;maddr=::1>"), 1),
            None => (format!("<sip:[::1]:{port};transport=tls>"), 0),
        };
        let encryption = match media {
            Media::SrtpMandatory => "srtp",
            Media::Plain => "none",
        };
        let config = format!(
            "[sip]\n\
             sip_port=0\nsip_tcp_port=0\nsip_tls_port=-1\n\
             use_ipv6=1\nipv6_migration_done=1\n\
             root_ca={root_ca}\nverify_server_certs=1\nverify_server_cn={check_name}\n\
             media_encryption={encryption}\nmedia_encryption_mandatory=1\n\
             default_proxy=0\n\
             [rtp]\nbind_address=::1\naudio_rtp_port=-1\n\
             [proxy_0]\n\
             reg_proxy={proxy}\n\
             reg_route={route}\n\
             reg_identity=\"Linphone {extension}\" <sip:{extension}@{DOMAIN}>\n\
             reg_expires=600\nreg_sendregister=1\npublish=0\n\
             [auth_info_0]\n\
             username={extension}\npasswd={password}\nrealm={DOMAIN}\ndomain={DOMAIN}\n",
            root_ca = trust.root_ca.display(),
            route = proxy.replace(">", ";lr>"),
        );
        Linphone::spawn(extension, dir, &config, None)
    }

    /// Starts linphonec for `extension` with nothing but a remote provisioning URL (the
    /// `config-uri` a person types in or scans), `root_ca` as the only trusted root for it and
    /// what it provisions, and `hosts` as its `/etc/hosts` (in a mount namespace of its own), so
    /// that it finds the server by name; returns at once.
    pub fn provisioned(
        extension: &str,
        config_uri: &str,
        root_ca: &Path,
        hosts: &Path,
    ) -> Linphone {
        let dir = TempDir::new().expect("temporary directory");
        let config = format!(
            "[misc]\nconfig-uri={config_uri}\n\
             [sip]\nroot_ca={}\nverify_server_certs=1\nverify_server_cn=1\n\
             [rtp]\nbind_address=::1\n",
            root_ca.display()
        );
        Linphone::spawn(extension, dir, &config, Some(hosts))
    }

    /// Runs linphonec on `config` in `dir`, with `hosts` bind-mounted over `/etc/hosts` if given.
    fn spawn(extension: &str, dir: TempDir, config: &str, hosts: Option<&Path>) -> Linphone {
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("create HOME");
        let rc = dir.path().join("linphonerc");
        std::fs::write(&rc, config).expect("write linphonerc");
        // stdbuf: whole lines even through pipes; -d 6: the log on stdout, for the SRTP line
        // and the failure report.
        let mut command = match hosts {
            None => Command::new("stdbuf"),
            Some(hosts) => {
                let mut command = Command::new("unshare");
                command.args(["--mount", "sh", "-c"]).arg(format!(
                    "mount --bind {} /etc/hosts && exec stdbuf \"$@\"",
                    hosts.display()
                ));
                command.arg("linphonec-in-namespace");
                command
            }
        };
        let child = command
            .args(["-oL", "-eL", "linphonec", "-d", "6", "-c"])
            .arg(&rc)
            .env("HOME", &home)
            .env("LC_ALL", "C")
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run stdbuf (coreutils): {e}"));
        let mut child = child;
        let stdin = child.stdin.take().expect("stdin");
        let output = Arc::new(Output::default());
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || read_lines(stream, &output));
        }
        let mut phone = Linphone {
            extension: extension.to_owned(),
            child,
            stdin,
            output,
            _dir: dir,
        };
        phone.use_files();
        phone
    }

    /// No sound card here: files instead, and a voice as the microphone, so that Linphone
    /// sends RTP that the other phone can authenticate. Remote provisioning restarts the
    /// core, which forgets this: say it again once provisioned.
    pub fn use_files(&mut self) {
        self.command("soundcard use files");
        self.command(&format!("play {VOICE}"));
    }

    /// [`Linphone::launch`] trusting the server's certificate (its chain, see [`Trust`]), then
    /// waits until the server registered it over TLS and Linphone saw the 200.
    pub fn start(server: &Server, extension: &str, password: &str, media: Media) -> Linphone {
        let root_ca = server.data_dir().join("tls/cert.pem");
        let trust = Trust {
            root_ca: &root_ca,
            name: None,
        };
        let phone = Linphone::launch(server, extension, password, media, trust);
        phone.registered(server);
        phone
    }

    /// Waits until the server registered this phone over TLS and Linphone saw the 200.
    pub fn registered(&self, server: &Server) {
        let extension = &self.extension;
        let line = server.wait_for_log(&format!("transport=TLS extension={extension} contacts=1"));
        assert!(line.contains(" registered "), "{line}");
        self.wait_for("to [LinphoneRegistrationOk]");
    }

    /// Types a command line into linphonec.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to linphonec");
        self.stdin.flush().expect("flush linphonec's stdin");
    }

    /// Waits for a line of output containing `needle` and returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + OUTPUT_TIMEOUT;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|line| line.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Unlocked first: a panic holding the lock would poison it for the report.
                drop(lines);
                panic!(
                    "linphonec {}: timed out waiting for {needle:?}",
                    self.extension
                );
            }
            lines = self.output.changed.wait_timeout(lines, left).unwrap().0;
        }
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let lines = self.output.lines.lock().unwrap();
            let start = lines.len().saturating_sub(300);
            eprintln!(
                "--- linphonec {} (last lines)\n{}",
                self.extension,
                lines[start..].join("\n")
            );
        }
    }
}

/// Collects the lines of one of linphonec's streams until it closes.
fn read_lines(stream: Box<dyn Read + Send>, output: &Output) {
    for line in BufReader::new(stream).split(b'\n') {
        let Ok(line) = line else {
            return;
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        output.lines.lock().unwrap().push(line);
        output.changed.notify_all();
    }
}

/// Fails with the way to install linphonec when it is missing (never skips the test).
pub fn require_linphonec() {
    match Command::new("linphonec").arg("-v").output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "linphonec is not installed: run .ci/run, or apt-get install linphone-cli (Debian 12)"
        ),
        Err(e) => panic!("cannot run linphonec: {e}"),
    }
}
