//! `hotline --version` and the first log line name the version (the Debian package's too when
//! the binary is the packaged one: checked by the package test, .ci/package-test).

mod common;

use std::process::Command;

use common::Server;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn version_is_printed_and_logged() {
    for flag in ["--version", "-V"] {
        let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        // Not the packaged binary: no package named.
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("hotline {VERSION}\n")
        );
    }
    let server = Server::start("");
    let line = server.wait_for_log("hotline starting");
    assert!(
        line.ends_with(&format!("hotline starting version={VERSION} package=none")),
        "{line}"
    );
}
