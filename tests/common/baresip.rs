//! baresip (Debian's `baresip`, 1.0), a real softphone, registered over TLS with hotline and
//! driven headless through its `ctrl_tcp` module (JSON commands and events in netstrings).
//!
//! baresip 1.0 does not verify the server's certificate (it loads the CA but never turns
//! verification on), so these tests prove nothing about certificate checking.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{DOMAIN, Server, Transport};
use tempfile::TempDir;

/// baresip's configuration, with `@CAFILE@` and `@CTRL_TCP_LISTEN@` to fill in.
const CONFIG: &str = include_str!("../baresip/config");

/// How long to wait for a baresip event or command response before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Account parameters: SDES-SRTP required (RTP/SAVP with a=crypto); baresip refuses calls
/// without it.
pub const SRTP_MANDATORY: &str = ";mediaenc=srtp-mand";

/// Account parameters: no media encryption, plain RTP/AVP.
pub const PLAIN_RTP: &str = "";

/// The CALL_MENC event of a secured audio stream: MENC_EVENT_SECURE (0), the stream and the
/// SRTP suite negotiated.
pub const SECURE_AUDIO: &str = "0,audio,AES_CM_128_HMAC_SHA1_80";

/// One baresip process with its own configuration directory, registered with the server.
pub struct Phone {
    control: Control,
    pub process: Process,
}

impl Phone {
    /// Starts baresip for `extension` with its account over TLS to `server` (`media`: account
    /// parameters), waits for the server to register it, and connects to its `ctrl_tcp`.
    pub fn start(server: &Server, extension: &str, password: &str, media: &str) -> Phone {
        let dir = TempDir::new().expect("temporary directory");
        // ctrl_tcp does not say which port it got: take a free one from the kernel.
        let ctrl = TcpListener::bind("[::1]:0")
            .and_then(|listener| listener.local_addr())
            .expect("free TCP port");
        let cafile = server.data_dir().join("tls/cert.pem");
        let config = CONFIG
            .replace("@CAFILE@", &cafile.display().to_string())
            .replace("@CTRL_TCP_LISTEN@", &ctrl.to_string());
        std::fs::write(dir.path().join("config"), config).expect("write config");
        // The domain does not resolve: the outbound proxy is the address of the TLS listener.
        let account = format!(
            "<sip:{extension}@{DOMAIN};transport=tls>;auth_pass={password};\
             outbound=\"sip:{};transport=tls\";regint=600;answermode=manual{media}\n",
            server.address(Transport::Tls)
        );
        std::fs::write(dir.path().join("accounts"), account).expect("write accounts");

        let log = File::create(dir.path().join("baresip.log")).expect("create the log");
        // -s: SIP trace, for the failure report. stdbuf: whole lines in the log even when
        // baresip is killed.
        let child = Command::new("stdbuf")
            .args(["-oL", "-eL", "baresip", "-s", "-f"])
            .arg(dir.path())
            .current_dir(dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run stdbuf (coreutils): {e}"));
        let process = Process {
            extension: extension.to_owned(),
            child,
            dir,
        };
        let line = server.wait_for_log(&format!("transport=TLS extension={extension} contacts=1"));
        assert!(line.contains(" registered "), "{line}");
        // baresip opened its ctrl_tcp listener before its event loop sent the REGISTER that
        // the server just accepted: one connection attempt is enough.
        let stream = TcpStream::connect(ctrl)
            .unwrap_or_else(|e| panic!("cannot connect to baresip's ctrl_tcp at {ctrl}: {e}"));
        Phone {
            control: Control::new(stream),
            process,
        }
    }

    /// Runs a command (`params` if any) and asserts that baresip accepted it.
    pub fn command(&mut self, command: &str, params: Option<&str>) {
        let response = self.control.command(command, params);
        assert!(
            response.contains("\"ok\":true"),
            "{}: {command} failed: {response}",
            self.process.extension
        );
    }

    /// Whether an event of this type came so far.
    pub fn had_event(&self, kind: &str) -> bool {
        let needle = format!("\"type\":\"{kind}\"");
        self.control
            .received()
            .iter()
            .any(|message| message.contains("\"event\":true") && message.contains(&needle))
    }

    /// Waits for an event of this type (`CALL_ESTABLISHED`…) and returns its JSON.
    pub fn event(&self, kind: &str) -> String {
        let needle = format!("\"type\":\"{kind}\"");
        let what = format!("{}: event {kind}", self.process.extension);
        self.control.wait(&what, |message| {
            message.contains("\"event\":true") && message.contains(&needle)
        })
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- baresip {}: ctrl_tcp\n{}",
                self.process.extension,
                self.control.received().join("\n")
            );
        }
    }
}

/// The baresip process, killed on drop; its log is shown when the test fails.
pub struct Process {
    pub extension: String,
    child: Child,
    dir: TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("baresip.log"));
            eprintln!(
                "--- baresip {}: log\n{}",
                self.extension,
                log.unwrap_or_default()
            );
        }
    }
}

/// A `ctrl_tcp` connection: commands out, and every netstring received, kept in order.
struct Control {
    stream: TcpStream,
    received: Arc<Received>,
    next_token: u32,
}

#[derive(Default)]
struct Received {
    state: Mutex<ReceivedState>,
    changed: Condvar,
}

#[derive(Default)]
struct ReceivedState {
    messages: Vec<String>,
    /// baresip closed the connection.
    ended: bool,
}

impl Control {
    fn new(stream: TcpStream) -> Control {
        let received = Arc::new(Received::default());
        let reader = stream.try_clone().expect("clone the ctrl_tcp stream");
        let shared = received.clone();
        std::thread::spawn(move || read_netstrings(reader, &shared));
        Control {
            stream,
            received,
            next_token: 1,
        }
    }

    /// Sends `{"command":…,"params":…,"token":…}` and returns the response with that token.
    fn command(&mut self, command: &str, params: Option<&str>) -> String {
        let token = self.next_token.to_string();
        self.next_token += 1;
        let mut json = format!("{{\"command\":{}", json_string(command));
        if let Some(params) = params {
            json += &format!(",\"params\":{}", json_string(params));
        }
        json += &format!(",\"token\":{}}}", json_string(&token));
        let netstring = format!("{}:{json},", json.len());
        self.stream
            .write_all(netstring.as_bytes())
            .expect("write to ctrl_tcp");
        let needle = format!("\"token\":\"{token}\"");
        self.wait(&format!("the response to {json}"), |message| {
            message.contains("\"response\":true") && message.contains(&needle)
        })
    }

    /// Waits for a message that `wanted` accepts, looking at every message received so far.
    fn wait(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut state = self.received.state.lock().unwrap();
        loop {
            if let Some(found) = state.messages.iter().find(|m| wanted(m)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.ended || left.is_zero() {
                let ended = state.ended;
                // Unlocked first: a panic holding the lock would poison it for the report.
                drop(state);
                match ended {
                    true => panic!("baresip closed ctrl_tcp before {what}"),
                    false => panic!("timed out waiting for {what}"),
                }
            }
            state = self.received.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.state.lock().unwrap().messages.clone()
    }
}

/// Reads `LENGTH:DATA,` netstrings until the end of the stream.
fn read_netstrings(mut stream: TcpStream, received: &Received) {
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        while let Some(message) = next_netstring(&mut buffer) {
            let mut state = received.state.lock().unwrap();
            state.messages.push(message);
            received.changed.notify_all();
        }
        let read = stream.read(&mut chunk);
        match read {
            Ok(n) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            Ok(_) | Err(_) => {
                let mut state = received.state.lock().unwrap();
                state.ended = true;
                received.changed.notify_all();
                return;
            }
        }
    }
}

/// Takes the first complete netstring off `buffer`.
fn next_netstring(buffer: &mut Vec<u8>) -> Option<String> {
    let colon = buffer.iter().position(|&b| b == b':')?;
    let length: usize = std::str::from_utf8(&buffer[..colon])
        .ok()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("not a netstring: {:?}", String::from_utf8_lossy(buffer)));
    let end = colon + 1 + length;
    if buffer.len() <= end {
        return None;
    }
    assert_eq!(buffer[end], b',', "netstring without its comma");
    let message = String::from_utf8_lossy(&buffer[colon + 1..end]).into_owned();
    buffer.drain(..=end);
    Some(message)
}

/// A JSON string of text that needs no escaping.
fn json_string(text: &str) -> String {
    assert!(
        !text
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control()),
        "{text:?} needs escaping"
    );
    format!("\"{text}\"")
}

/// The value of a string field of a flat JSON object, as baresip writes them (no spaces, no
/// escaped quotes in the values looked at).
pub fn field<'a>(message: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":\"");
    let start = message
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {message}"))
        + key.len();
    let length = message[start..]
        .find('"')
        .unwrap_or_else(|| panic!("unterminated {name} in {message}"));
    &message[start..start + length]
}

/// Fails with the way to install baresip when it is missing (never skips the test).
pub fn require_baresip() {
    match Command::new("baresip").arg("-h").output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("baresip is not installed: run .ci/run, or apt-get install baresip (Debian 12)")
        }
        Err(e) => panic!("cannot run baresip: {e}"),
    }
}
