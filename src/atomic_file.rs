//! Files written in one step: a crash leaves the old file or the new one, never half of either,
//! and the new one never takes the mode or the target of a file or link left at its temporary
//! name.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Creates `path` anew with `mode`, removing a leftover first: `create_new` writes neither
/// through a link nor into a file with other permissions.
pub fn create_fresh(path: &Path, mode: u32) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Writes `contents` to `path` with `mode` through `<path>.tmp`, renamed over `path` once on
/// disk; the directory is synced, so the rename survives a power cut too.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = beside(path, ".tmp");
    let written = (|| {
        let mut file = create_fresh(&temporary, mode)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
    })();
    if written.is_err() {
        // Best effort: a leftover is removed by the next attempt anyway.
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// `path` with `suffix` added to its name (`hotline.toml` → `hotline.toml.bak`).
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_link_or_file_left_at_the_temporary_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup");
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "someone else's").unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o666)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, beside(&path, ".tmp")).unwrap();

        write(&path, b"secret", 0o600).unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"secret");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read(&elsewhere).unwrap(), b"someone else's");
        assert!(!beside(&path, ".tmp").exists());
    }
}
