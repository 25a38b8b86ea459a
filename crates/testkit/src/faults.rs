//! Storage faults for durability tests: a small tmpfs that can be filled to ENOSPC, and files made
//! immutable with `chattr +i`. Both need root (CI runs as root); where the machine refuses, the
//! constructors return the reason so the test can say it was skipped instead of passing silently.

/// Unwraps a fault from [`SmallDisk::mount`] or [`Immutable::set`], or ends the test saying
/// why it was skipped (never a silent pass).
#[macro_export]
macro_rules! or_skip {
    ($fault:expr) => {
        match $fault {
            Ok(fault) => fault,
            Err(why) => {
                eprintln!("SKIPPED: this test needs a storage fault the machine refuses: {why}");
                return;
            }
        }
    };
}

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a fresh temporary directory; unmounted on drop.
pub struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_kib` KiB, or says why it cannot.
    pub fn mount(size_kib: u64) -> Result<SmallDisk, String> {
        let mount = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0700"), "tmpfs"])
            .arg(mount.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!("mount -t tmpfs refused: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(SmallDisk { mount })
    }

    pub fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Writes a filler file until the disk reports ENOSPC; [`Filler::free`] (or drop) removes it.
    pub fn fill(&self) -> Filler {
        let path = self.mount.path().join("filler");
        let mut file = File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Whatever a partial page left over: the last bytes too.
        while file.write(&[0]).is_ok_and(|n| n == 1) {}
        Filler { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a node still holding files open must not keep the mount (and the test) alive.
        let _ = Command::new("umount").arg("-l").arg(self.mount.path()).status();
    }
}

/// The file that keeps a [`SmallDisk`] full.
pub struct Filler {
    path: PathBuf,
}

impl Filler {
    pub fn free(self) {}
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Files made immutable (`chattr +i`) until [`Immutable::release`] or drop.
pub struct Immutable {
    paths: Vec<PathBuf>,
}

impl Immutable {
    /// Sets the immutable attribute on every path that exists (a WAL comes and goes, also
    /// while this runs), or says why it cannot.
    pub fn set(paths: &[PathBuf]) -> Result<Immutable, String> {
        let mut frozen = Immutable { paths: Vec::new() };
        for path in paths {
            let output =
                Command::new("chattr").arg("+i").arg(path).output().map_err(|e| format!("cannot run chattr: {e}"))?;
            if output.status.success() {
                frozen.paths.push(path.clone());
            } else if path.exists() {
                return Err(format!("chattr +i refused: {}", String::from_utf8_lossy(&output.stderr).trim()));
            }
        }
        Ok(frozen)
    }

    pub fn release(self) {}
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.paths).status();
    }
}
