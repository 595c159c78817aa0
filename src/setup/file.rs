//! The configuration file the wizard writes: the documented default file (`config/hotline.toml`)
//! with the chosen values in place, so that the file on the appliance explains every key.

use std::fs::{self, DirBuilder};
use std::io::{self};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Every key with its default and what it does.
pub const TEMPLATE: &str = include_str!("../../config/hotline.toml");

/// The text of a configuration file holding `values` (a whole configuration as a TOML table):
/// the documented template with each value on its key's line. Should a value have no line there,
/// the plain TOML of `values` instead, which means the same.
pub fn render(values: &toml::Table) -> Result<String, toml::ser::Error> {
    let plain = toml::to_string(values)?;
    if let Some(text) = fill_template(values, &plain) {
        return Ok(text);
    }
    Ok(format!(
        "# hotline configuration, written by `hotline setup`.\n\
         # Every key, with its default and what it does: config/hotline.toml of the source.\n\n\
         {plain}"
    ))
}

/// A `key = value` line of the template, or a commented-out one (`# certificate = …`).
struct Slot {
    section: Option<String>,
    key: String,
    commented: bool,
    line: usize,
}

fn fill_template(values: &toml::Table, plain: &str) -> Option<String> {
    let mut lines: Vec<String> = TEMPLATE.lines().map(str::to_owned).collect();
    let mut slots = Vec::new();
    let mut section = None;
    for (line, text) in lines.iter().enumerate() {
        let text = text.trim();
        if let Some(name) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = Some(name.trim().to_owned());
            continue;
        }
        let (body, commented) = match text.strip_prefix('#') {
            Some(rest) => (rest.trim_start(), true),
            None => (text, false),
        };
        let Some((key, _)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if bare {
            slots.push(Slot {
                section: section.clone(),
                key: key.to_owned(),
                commented,
                line,
            });
        }
    }

    let mut wanted = Vec::new();
    for (key, value) in values {
        match value {
            toml::Value::Table(table) => {
                wanted.extend(table.iter().map(|(k, v)| (Some(key.as_str()), k, v)));
            }
            value => wanted.push((None, key, value)),
        }
    }
    for (section, key, value) in wanted {
        let fits = |slot: &&Slot| slot.section.as_deref() == section && slot.key == *key;
        let slot = slots
            .iter()
            .filter(fits)
            .find(|slot| !slot.commented)
            .or_else(|| slots.iter().find(fits))?;
        lines[slot.line] = format!("{key} = {value}");
    }
    let text = lines.join("\n") + "\n";
    // The filled template must mean exactly what the values mean.
    (Config::parse(&text).ok()? == Config::parse(plain).ok()?).then_some(text)
}

/// Writes `text` to `path` in one step (a crash leaves the old file or the new one), creating
/// its directory. A different file already there is kept as `<name>.bak`, which is returned.
pub fn write(path: &Path, text: &str) -> io::Result<Option<PathBuf>> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)?;
    let mut backup = None;
    match fs::read_to_string(path) {
        Ok(old) if old == text => return Ok(None),
        Ok(old) => {
            let bak = crate::atomic_file::beside(path, ".bak");
            fs::write(&bak, old)?;
            backup = Some(bak);
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    crate::atomic_file::write(path, text.as_bytes(), 0o644)?;
    Ok(backup)
}
