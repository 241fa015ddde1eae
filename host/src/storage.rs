//! Object storage. The filesystem backend keeps objects at `{root}/{bucket}/{key}`, written to a
//! temporary file and renamed so a reader never sees half a JPEG (overwrite mode replaces the
//! picture in place).

use anyhow::{Context, bail};
use std::path::PathBuf;

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Storage rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }

    /// The file an object lives in. Refuses a bucket or key that could leave the root: keys come
    /// from the guest, which checks names, but the host does not take that on trust.
    pub fn path_of(&self, bucket: &str, key: &str) -> anyhow::Result<PathBuf> {
        let mut path = self.root.clone();
        for (what, value) in [("bucket", bucket), ("key", key)] {
            // Check the text, not `Path::components`, which silently drops `.` segments.
            let safe = !value.contains('\0')
                && !value.contains('\\')
                && value
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !safe {
                bail!(
                    "refusing {what} {value:?}: it must be a relative path without '.' or '..' parts"
                );
            }
            path.push(value);
        }
        Ok(path)
    }

    /// Store `bytes` as object `key` of `bucket`.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path_of(bucket, key)?;
        let dir = path
            .parent()
            .context("object path has no parent directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".part");
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", path.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("renaming into {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let s = FsStorage::new("/srv/shots");
        assert_eq!(
            s.path_of("b", "record/live/x/picture/x.jpg").unwrap(),
            PathBuf::from("/srv/shots/b/record/live/x/picture/x.jpg")
        );
        for (bucket, key) in [
            ("..", "k"),
            ("b", "../k"),
            ("b", "/etc/passwd"),
            ("b", "a/./b"),
            ("", "k"),
            ("b", "a\0"),
        ] {
            assert!(s.path_of(bucket, key).is_err(), "{bucket:?} {key:?}");
        }
    }

    #[test]
    fn put_writes_and_overwrites() {
        let dir = std::env::temp_dir().join(format!("livesnap-fs-{}", std::process::id()));
        let s = FsStorage::new(&dir);
        s.put("b", "a/b.jpg", b"one").unwrap();
        s.put("b", "a/b.jpg", b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("b/a/b.jpg")).unwrap(), b"two");
        assert!(!dir.join("b/a/b.jpg.part").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
