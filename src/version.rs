//! What `hotline --version` and the first log line say: this build's version and, when this
//! binary is the one the Debian package installed, the package's version.

use std::path::Path;
use std::process::Command;

/// The version of this build (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the Debian package installs the binary.
const PACKAGED_BINARY: &str = "/usr/bin/hotline";

/// The installed package's version (`0.1.0-1`), if this process runs the packaged binary and
/// dpkg knows the package. Asks `dpkg-query`: a static binary has no libdpkg, and dpkg's own
/// tool is the interface to its database.
pub fn package() -> Option<String> {
    let executable = std::env::current_exe().ok()?;
    if executable != Path::new(PACKAGED_BINARY) {
        return None;
    }
    let output = Command::new("dpkg-query")
        .args(["--showformat=${Version}", "--show", "hotline"])
        .output()
        .ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    let version = version.trim();
    (output.status.success() && !version.is_empty()).then(|| version.to_owned())
}

/// `hotline 0.1.0 (Debian package 0.1.0-1)`, or `hotline 0.1.0`.
pub fn describe(package: Option<&str>) -> String {
    match package {
        Some(package) => format!("hotline {VERSION} (Debian package {package})"),
        None => format!("hotline {VERSION}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_is_named_when_there_is_one() {
        assert_eq!(describe(None), format!("hotline {VERSION}"));
        assert_eq!(
            describe(Some("0.1.0-2")),
            format!("hotline {VERSION} (Debian package 0.1.0-2)")
        );
        // The test binary is not the packaged one.
        assert_eq!(package(), None);
    }
}
