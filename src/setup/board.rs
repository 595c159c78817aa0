//! What the wizard and `hotline restore` leave on the board besides the configuration: the
//! database, owned by the service's user, and the systemd unit that runs it.

use std::path::Path;

use anyhow::Context as _;

use crate::data_dir::DataDir;
use crate::store::Store;

/// The systemd unit that runs the server.
pub const SERVICE: &str = "hotline.service";

/// Gives every file in `data_dir` the owner of `data_dir` itself. The wizard runs as root, and a
/// file it makes there (a new certificate, a new database) would be root's, unreadable by the
/// service: under systemd's `DynamicUser=` the service's user owns the directory, and systemd
/// re-owns its contents only when the directory's owner changes.
pub fn give_to_data_dir_owner(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, lchown};
    let cannot = |path: &Path| {
        format!(
            "cannot give {} the owner of the data directory {}",
            path.display(),
            data_dir.display()
        )
    };
    let owner = std::fs::metadata(data_dir).with_context(|| cannot(data_dir))?;
    let mut directories = vec![data_dir.to_owned()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).with_context(|| cannot(&directory))? {
            let path = entry.with_context(|| cannot(&directory))?.path();
            let metadata = std::fs::symlink_metadata(&path).with_context(|| cannot(&path))?;
            if metadata.uid() != owner.uid() || metadata.gid() != owner.gid() {
                lchown(&path, Some(owner.uid()), Some(owner.gid()))
                    .with_context(|| cannot(&path))?;
            }
            if metadata.is_dir() {
                directories.push(path);
            }
        }
    }
    Ok(())
}

/// Opens the database in `data_dir`, creating the directory (owner-only) and the file.
pub fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    let data_dir = DataDir::new(data_dir);
    data_dir.create()?;
    Ok(Store::open(&data_dir.database())?)
}
