//! The process sandbox: on Linux, `mudrock run`, `worker` (and later
//! `serve`) restrict their own filesystem access with Landlock before any
//! thread starts, so that whatever an expression or a bug tries, the
//! process can read and write only what it needs.
//!
//! Allowed, read-write: the local store directory, the scratch directory,
//! `/dev/null`. Read-only: the config file, the pipeline file a command
//! was given, TLS roots and the resolver's files (`/etc/ssl`,
//! `/etc/ca-certificates`, `/usr/share/ca-certificates`,
//! `/usr/local/share/ca-certificates`, `/etc/resolv.conf`,
//! `/etc/hosts`, `/etc/nsswitch.conf`, `/etc/gai.conf`), shared libraries
//! the resolver may load (`/lib`, `/lib64`, `/usr/lib`), memory and CPU
//! limits (`/proc/meminfo`, `/proc/self/cgroup`, `/proc/self/mountinfo`,
//! `/sys/fs/cgroup`, `/sys/devices/system/cpu`), `~/.aws` for the S3
//! credential chain, and `sandbox.extra_read`. Nothing else, not even
//! `/proc/self/environ` or the rest of `/etc`.
//!
//! Landlock restricts the calling thread and the threads it starts later,
//! which is why [`apply`] runs in `main` before the runtime exists. Where
//! the kernel has no Landlock the process runs unrestricted with a warning.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[sandbox]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Restrict the process (where the kernel supports Landlock).
    pub enabled: bool,
    /// Refuse to start unless the sandbox is fully enforced (by default a
    /// kernel or container without Landlock only gets a warning).
    pub required: bool,
    /// More paths the process may read (and list, if directories).
    pub extra_read: Vec<PathBuf>,
    /// More paths the process may read and write.
    pub extra_write: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            required: false,
            extra_read: Vec::new(),
            extra_write: Vec::new(),
        }
    }
}

/// What the sandbox allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
}

/// Files the process needs to read whatever it does: TLS roots, the
/// resolver's configuration and the libraries it loads.
const SYSTEM_READ: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/usr/share/ca-certificates",
    // Debian links locally installed CAs from here into /etc/ssl/certs.
    "/usr/local/share/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    // Memory and CPU limits (Polars sizes buffers by them, the standard
    // library its thread count): counters, nothing secret.
    "/proc/meminfo",
    "/proc/self/cgroup",
    "/proc/self/mountinfo",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
];

impl Paths {
    /// The system's files (above) plus `read` and `write`, and the
    /// config's extra paths.
    pub fn new(config: &SandboxConfig, read: Vec<PathBuf>, write: Vec<PathBuf>) -> Self {
        let mut p = Paths {
            read: SYSTEM_READ.iter().map(PathBuf::from).collect(),
            write: vec![PathBuf::from("/dev/null")],
        };
        if let Some(home) = std::env::var_os("HOME") {
            p.read.push(Path::new(&home).join(".aws"));
        }
        p.read.extend(read);
        p.read.extend(config.extra_read.iter().cloned());
        p.write.extend(write);
        p.write.extend(config.extra_write.iter().cloned());
        p
    }
}

/// How far the sandbox is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every rule is enforced by the kernel.
    Enforced,
    /// The kernel's Landlock is older than the rules: some are not.
    Partial,
    /// No Landlock here (or not Linux): unrestricted.
    Unsupported,
    /// `sandbox.enabled = false`.
    Disabled,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Enforced => "enforced",
            Status::Partial => "partially enforced",
            Status::Unsupported => "not supported by this kernel",
            Status::Disabled => "disabled",
        }
    }
}

/// Why the sandbox could not be set up (a path that cannot be opened is
/// not an error: it is skipped).
#[derive(Debug, thiserror::Error)]
#[error("sandbox: {0}")]
pub struct SandboxError(String);

/// Restricts this thread and every thread it starts from now on to
/// `paths`. Call before any other thread exists. The directories to write
/// are created first (a rule needs an existing path).
pub fn apply(config: &SandboxConfig, paths: &Paths) -> Result<Status, SandboxError> {
    let status = apply_inner(config, paths)?;
    let _ = STATUS.set(status);
    Ok(status)
}

/// What [`apply`] achieved in this process, if it was called.
pub fn status() -> Option<Status> {
    STATUS.get().copied()
}

static STATUS: std::sync::OnceLock<Status> = std::sync::OnceLock::new();

fn apply_inner(config: &SandboxConfig, paths: &Paths) -> Result<Status, SandboxError> {
    if !config.enabled {
        return Ok(Status::Disabled);
    }
    for dir in &paths.write {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SandboxError(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    imp::apply(paths)
}

#[cfg(target_os = "linux")]
mod imp {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };

    use super::{Paths, SandboxError, Status};

    pub fn apply(paths: &Paths) -> Result<Status, SandboxError> {
        let abi = ABI::V5;
        let err = |e: landlock::RulesetError| SandboxError(e.to_string());
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?
            .create()
            .map_err(err)?
            .add_rules(path_beneath_rules(&paths.read, AccessFs::from_read(abi)))
            .map_err(err)?
            .add_rules(path_beneath_rules(&paths.write, AccessFs::from_all(abi)))
            .map_err(err)?
            .restrict_self()
            .map_err(err)?;
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => Status::Enforced,
            RulesetStatus::PartiallyEnforced => Status::Partial,
            RulesetStatus::NotEnforced => Status::Unsupported,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Paths, SandboxError, Status};

    pub fn apply(_paths: &Paths) -> Result<Status, SandboxError> {
        Ok(Status::Unsupported)
    }
}
