//! A filesystem on a disk that can lose power: a fresh image, made into
//! ext4 or XFS, served by `coffre-crashdisk`, attached to a loop device and
//! mounted. Dropping a [`PoweredDisk`] tears it all down, whatever happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Big enough for a trial's objects; XFS refuses images under 300 MB.
const IMAGE_SIZE: &str = "512M";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Ext4,
    Xfs,
}

impl Fs {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "ext4" => Ok(Self::Ext4),
            "xfs" => Ok(Self::Xfs),
            other => Err(format!("--fs: {other:?} is neither ext4 nor xfs")),
        }
    }

    fn mkfs(self, image: &Path) -> Result<(), String> {
        match self {
            Self::Ext4 => run("mkfs.ext4", &["-q".into(), "-F".into(), image.into()]),
            Self::Xfs => run("mkfs.xfs", &["-q".into(), "-f".into(), image.into()]),
        }
    }
}

fn run(program: &str, args: &[std::ffi::OsString]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn run_out(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The image file that survives the cut, and the directory it is mounted on.
pub struct Image {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub mnt: PathBuf,
}

impl Image {
    pub fn create(dir: &Path, fs: Fs) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let image = dir.join("durable.img");
        let _ = std::fs::remove_file(&image);
        run("truncate", &["-s".into(), IMAGE_SIZE.into(), image.clone().into()])?;
        fs.mkfs(&image)?;
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        Ok(Self { dir: dir.to_path_buf(), image, mnt })
    }
}

/// The image behind a volatile cache, mounted at `Image::mnt`.
pub struct PoweredDisk {
    fuse_dir: PathBuf,
    daemon: Option<Child>,
    loop_dev: Option<String>,
    mounted: Option<PathBuf>,
}

impl PoweredDisk {
    pub fn start(image: &Image, crashdisk: &Path) -> Result<Self, String> {
        let fuse_dir = image.dir.join("fuse");
        std::fs::create_dir_all(&fuse_dir).map_err(|e| e.to_string())?;
        let daemon = Command::new(crashdisk)
            .arg(&image.image)
            .arg(&fuse_dir)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", crashdisk.display()))?;
        let mut disk = Self { fuse_dir: fuse_dir.clone(), daemon: Some(daemon), loop_dev: None, mounted: None };
        let served = fuse_dir.join("disk.img");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !served.exists() {
            if Instant::now() > deadline {
                return Err("coffre-crashdisk did not serve disk.img within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let served = served.to_string_lossy().into_owned();
        disk.loop_dev = Some(run_out("losetup", &["--find", "--show", &served])?);
        let dev = disk.loop_dev.clone().unwrap_or_default();
        run("mount", &[dev.into(), image.mnt.clone().into()])?;
        disk.mounted = Some(image.mnt.clone());
        Ok(disk)
    }

    /// The power goes: everything not flushed is gone, and nothing written
    /// after this point can reach the disk.
    pub fn cut(&self) -> Result<(), String> {
        std::fs::write(self.fuse_dir.join("ctl"), "cut").map_err(|e| format!("cutting power: {e}"))
    }

    /// As [`PoweredDisk::cut`], but a seeded random half of the pending pages
    /// reach the disk first, in no particular order.
    pub fn cut_keeping_random(&self, seed: u64) -> Result<(), String> {
        std::fs::write(self.fuse_dir.join("ctl"), format!("cut-keep-random {seed}"))
            .map_err(|e| format!("cutting power: {e}"))
    }

    /// The next `n` flushes fail with EIO and lose their pages.
    pub fn fail_flushes(&self, n: u64) -> Result<(), String> {
        std::fs::write(self.fuse_dir.join("ctl"), format!("fail-flushes {n}"))
            .map_err(|e| format!("failing flushes: {e}"))
    }

    /// The counters of the crash disk (writes, flushes, ...).
    pub fn counters(&self) -> String {
        match std::fs::read_to_string(self.fuse_dir.join("ctl")) {
            Ok(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
            Err(e) => format!("counters unreadable: {e}"),
        }
    }
}

impl Drop for PoweredDisk {
    fn drop(&mut self) {
        if let Some(mnt) = self.mounted.take() {
            // Lazy: the dead disk makes a clean unmount fail or hang.
            let _ = Command::new("umount").arg("-l").arg(&mnt).status();
        }
        if let Some(dev) = self.loop_dev.take() {
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
        let _ = Command::new("umount").arg(&self.fuse_dir).status();
        if let Some(mut daemon) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = daemon.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = Command::new("umount").arg("-l").arg(&self.fuse_dir).status();
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// The durable image mounted directly (no crash disk): the machine after
/// power comes back.
pub struct Remounted {
    mnt: PathBuf,
}

impl Remounted {
    pub fn mount(image: &Image) -> Result<Self, String> {
        run("mount", &["-o".into(), "loop".into(), image.image.clone().into(), image.mnt.clone().into()])?;
        Ok(Self { mnt: image.mnt.clone() })
    }
}

impl Drop for Remounted {
    fn drop(&mut self) {
        if Command::new("umount").arg(&self.mnt).status().map_or(true, |s| !s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Root, /dev/fuse, a loop device and the mkfs of `fs`: what a trial needs.
pub fn check_prerequisites(fs: Fs) -> Result<(), String> {
    if run_out("id", &["-u"]).as_deref() != Ok("0") {
        return Err("power-cut trials need root (loop devices and mount)".into());
    }
    for path in ["/dev/fuse", "/dev/loop-control"] {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing"));
        }
    }
    let mkfs = match fs {
        Fs::Ext4 => "mkfs.ext4",
        Fs::Xfs => "mkfs.xfs",
    };
    run_out("sh", &["-c", &format!("command -v {mkfs}")])
        .map_err(|_| format!("{mkfs} is missing (apt-get install xfsprogs for XFS)"))?;
    Ok(())
}
