//! A mutation fuzzer that needs no nightly toolchain and no coverage instrumentation: it mutates
//! the seed files with a seeded PRNG (bit flips, SIP tokens, numbers, splices, cuts) and runs the
//! same target functions as the libFuzzer targets, catching panics.
//!
//!     cargo run --release --no-default-features --features mutate --bin mutate -- parse 600
//!     cargo run --release --no-default-features --features mutate --bin mutate -- core 600
//!     cargo run --release --no-default-features --features mutate --bin mutate -- replay core artifacts/core/crash-…
//!     cargo run --release --no-default-features --features mutate --bin mutate -- seeds
//!
//! Seeds come from `seeds/<target>/` and `../tests/torture/` (and `corpus/<target>/` when a
//! libFuzzer run left one); crashing inputs go to `artifacts/<target>/`. `FUZZ_SEED=n` picks
//! another PRNG sequence.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b"%00",
    b"@",
    b"[",
    b"]",
    b"=",
    b"?",
    b"SIP/2.0",
    b"SIP/2.0 200 OK\r\n",
    b"SIP/2.0/UDP ",
    b"SIP/2.0/TCP ",
    b"Via: ",
    b"v: ",
    b";branch=z9hG4bK",
    b";rport",
    b";received=",
    b";lr",
    b";tag=",
    b";expires=",
    b";transport=tcp",
    b"sip:",
    b"sips:",
    b"tel:",
    b"[::1]",
    b"[2001:db8::1]:5060",
    b"[::ffff:192.0.2.1]",
    b"hotline.test",
    b"1000",
    b"1001",
    b"INVITE",
    b"REGISTER",
    b"ACK",
    b"CANCEL",
    b"BYE",
    b"OPTIONS",
    b"MESSAGE",
    b"Content-Length: ",
    b"l: ",
    b"Content-Type: application/sdp\r\n",
    b"CSeq: ",
    b"Call-ID: ",
    b"From: ",
    b"To: ",
    b"Contact: ",
    b"Contact: *\r\n",
    b"Expires: 0\r\n",
    b"Max-Forwards: 0\r\n",
    b"Route: <sip:[::1]:5060;lr>\r\n",
    b"Record-Route: ",
    b"Require: ",
    b"Proxy-Require: ",
    b"Authorization: Digest ",
    b"Proxy-Authorization: Digest ",
    b"username=\"1000\", realm=\"hotline.test\", nonce=\"",
    b"algorithm=SHA-256",
    b"qop=auth, nc=00000001, cnonce=\"x\"",
    b"v=0\r\n",
    b"m=audio 0 RTP/AVP 0\r\n",
    b"m=audio 4000 RTP/SAVP 0\r\n",
    b"m=video 4002 UDP/TLS/RTP/SAVPF 96\r\n",
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
    b"c=IN IP6 ::1\r\n",
    b"4294967295",
    b"4294967296",
    b"18446744073709551616",
    b"-1",
    b"999999999",
    b"65535",
    b"65536",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => input.insert(at, rng.next() as u8),
            3 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at.min(len - 1)..end);
            }
            4 | 5 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            6 if len > 0 => {
                // Duplicate a range.
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            7 if !seeds.is_empty() => {
                // Splice in part of another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(256)).min(other.len());
                    input.splice(at..at, other[start..end].iter().copied());
                }
            }
            8 => {
                // Replace a run of digits with another number.
                if let Some(start) = (at..len).find(|&i| input[i].is_ascii_digit()) {
                    let end = (start..len)
                        .find(|&i| !input[i].is_ascii_digit())
                        .unwrap_or(len);
                    let number = match rng.below(4) {
                        0 => rng.below(10).to_string(),
                        1 => (rng.next() % 70_000).to_string(),
                        2 => rng.next().to_string(),
                        _ => "0".repeat(1 + rng.below(40)),
                    };
                    input.splice(start..end, number.bytes());
                }
            }
            9 if len > 0 => input.truncate(at),
            _ => {
                // Swap two bytes.
                if len > 1 {
                    let (i, j) = (rng.below(len), rng.below(len));
                    input.swap(i, j);
                }
            }
        }
        if input.len() > 64 * 1024 {
            input.truncate(64 * 1024);
        }
    }
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn run(target: Target, input: &[u8]) -> Result<(), String> {
    PANIC.with(|p| p.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(|| target(input))) {
        Ok(()) => Ok(()),
        Err(_) => Err(PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_owned())),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| {
        p.is_file()
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    paths.sort();
    paths
}

fn target_of(name: &str) -> Target {
    match name {
        "parse" => hotline_fuzz::parse,
        "core" => hotline_fuzz::core,
        other => panic!("unknown target {other:?}: parse or core"),
    }
}

fn torture_corpus(root: &Path) -> Vec<(String, Vec<u8>)> {
    files(&root.join("../tests/torture"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        PANIC.with(|p| *p.borrow_mut() = Some(message));
    }));
    match args.as_slice() {
        ["seeds"] => {
            let corpus = torture_corpus(&root);
            for (target, seeds) in [
                ("core", hotline_fuzz::core_seeds(&corpus)),
                ("parse", hotline_fuzz::parse_seeds()),
            ] {
                let dir = root.join("seeds").join(target);
                fs::create_dir_all(&dir).unwrap();
                for (name, bytes) in &seeds {
                    fs::write(dir.join(name), bytes).unwrap();
                }
                println!("{} seeds in {}", seeds.len(), dir.display());
            }
        }
        ["replay", target, paths @ ..] => {
            let target = target_of(target);
            for path in paths {
                let input = fs::read(path).unwrap();
                match run(target, &input) {
                    Ok(()) => println!("{path}: ok"),
                    Err(message) => println!("{path}: {message}"),
                }
            }
        }
        [name, rest @ ..] => {
            let target = target_of(name);
            let seconds: u64 = rest.first().map_or(60, |s| s.parse().expect("seconds"));
            let mut seeds: Vec<Vec<u8>> = Vec::new();
            for dir in [
                root.join("seeds").join(name),
                root.join("corpus").join(name),
                root.join("../tests/torture"),
            ] {
                let dat_only = dir.ends_with("torture");
                seeds.extend(
                    files(&dir)
                        .iter()
                        .filter(|p| !dat_only || p.extension().is_some_and(|e| e == "dat"))
                        .map(|p| fs::read(p).unwrap()),
                );
            }
            if seeds.is_empty() {
                seeds.push(Vec::new());
            }
            let artifacts = root.join("artifacts").join(name);
            let mut rng = Rng(std::env::var("FUZZ_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0x5EED_0F70_870E));
            let start = Instant::now();
            let deadline = start + Duration::from_secs(seconds);
            let mut report = start + Duration::from_secs(10);
            let (mut executions, mut crashes) = (0u64, 0u64);
            let mut seen: HashSet<String> = HashSet::new();
            for seed in &seeds {
                executions += 1;
                if let Err(message) = run(target, seed) {
                    println!("a seed panics: {message}");
                }
            }
            while Instant::now() < deadline {
                let mut input = seeds[rng.below(seeds.len())].clone();
                mutate(&mut rng, &mut input, &seeds);
                executions += 1;
                if let Err(message) = run(target, &input) {
                    crashes += 1;
                    // One artifact per panic location.
                    let location = message.lines().next().unwrap_or("").to_owned();
                    if seen.insert(location) {
                        fs::create_dir_all(&artifacts).unwrap();
                        let file = artifacts.join(format!("crash-{executions}"));
                        fs::write(&file, &input).unwrap();
                        println!("CRASH {}: {message}", file.display());
                    }
                }
                if Instant::now() >= report {
                    report += Duration::from_secs(10);
                    let secs = start.elapsed().as_secs_f64();
                    println!(
                        "{:>5.0}s {executions} executions ({:.0}/s), {crashes} crashing",
                        secs,
                        executions as f64 / secs
                    );
                }
            }
            println!(
                "done: {executions} executions in {seconds} s, {crashes} crashing inputs, {} distinct panics",
                seen.len()
            );
        }
        [] => eprintln!("usage: mutate <parse|core> [seconds] | replay <target> <file>… | seeds"),
    }
}
