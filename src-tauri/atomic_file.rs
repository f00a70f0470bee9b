//! Replacing a file so that a reader (or a crash) sees the old contents or the new ones,
//! never half of either: write a temporary file beside it, fsync it, rename it over the
//! old one (atomic within one file system, POSIX `rename(2)`), then fsync the directory so
//! the rename itself survives a power cut. Used for the broker's `config.toml` and for MCP
//! clients' own configuration files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Permissions of a file this module creates: private, since configuration files hold
/// command lines, URLs and sometimes literal values the person typed.
#[cfg(unix)]
pub const PRIVATE: u32 = 0o600;

/// Writes `bytes` to `file` in one rename, creating missing parent directories. An
/// existing file keeps its permissions; a new one gets mode 0600 (on Unix).
pub fn replace(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A symlink (dotfiles kept in a repository) stays a symlink: its target is replaced.
    let target;
    let file = match std::fs::symlink_metadata(file) {
        Ok(m) if m.file_type().is_symlink() => {
            target = std::fs::canonicalize(file)?;
            target.as_path()
        }
        _ => file,
    };
    let dir = parent(file);
    std::fs::create_dir_all(&dir)?;
    let existing = match std::fs::metadata(file) {
        Ok(m) => Some(m.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    // `tempfile` creates the temporary file with mode 0600 already.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match existing {
        Some(perms) => std::fs::set_permissions(tmp.path(), perms)?,
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(PRIVATE))?;
            }
        }
    }
    tmp.persist(file).map_err(|e| e.error)?;
    sync_dir(&dir);
    Ok(())
}

fn parent(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Best effort: some file systems refuse to fsync a directory, and the data itself is
/// already on disk by then.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_and_keeps_existing_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a").join("b.toml");
        replace(&f, b"one").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&f), 0o600);
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
            replace(&f, b"two").unwrap();
            assert_eq!(mode(&f), 0o640);
        }
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        // No temporary files left beside it.
        assert_eq!(std::fs::read_dir(f.parent().unwrap()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles").join("config.toml");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("config.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
    }
}
