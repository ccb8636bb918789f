//! The sandbox holds: inside a sandboxed mudrock process, Rust code reading
//! a file outside the allowed paths is refused by the kernel, while the
//! store and scratch directories stay usable; a pipeline still runs in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use mudrock::sandbox::{Paths, SandboxConfig, Status, apply};

/// Whether this kernel has Landlock (then the sandbox must be enforced):
/// a throwaway thread sandboxes itself and reports.
fn landlock_here() -> bool {
    std::thread::spawn(|| {
        let paths = Paths::new(&SandboxConfig::default(), vec![], vec![]);
        apply(&SandboxConfig::default(), &paths).unwrap() == Status::Enforced
    })
    .join()
    .unwrap()
}

fn mudrock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mudrock"))
}

struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
    outside: PathBuf,
    config: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let store = root.join("store");
    std::fs::create_dir_all(store.join("project-local")).unwrap();
    std::fs::write(store.join("project-local/inside.txt"), "inside").unwrap();
    let outside = root.join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    let config = root.join("mudrock.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndir = \"{}\"\n[engine]\nscratch_dir = \"{}\"\n",
            store.display(),
            root.join("scratch").display()
        ),
    )
    .unwrap();
    Dirs {
        _tmp: tmp,
        root,
        store,
        outside,
        config,
    }
}

#[test]
fn a_read_outside_the_allowed_paths_fails_inside_the_sandboxed_process() {
    let d = dirs();
    let inside = d.store.join("project-local/inside.txt");
    let out = mudrock()
        .arg("--config")
        .arg(&d.config)
        .arg("sandbox")
        .args(["--try-read", "/etc/passwd"])
        .arg("--try-read")
        .arg(&d.outside)
        .arg("--try-read")
        .arg(&inside)
        .arg("--try-read")
        .arg("/proc/self/environ")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |p: &Path| {
        text.lines()
            .find(|l| l.starts_with(&format!("read {}:", p.display())))
            .unwrap_or_else(|| panic!("no line for {}: {text}", p.display()))
            .to_string()
    };
    if landlock_here() {
        assert!(text.starts_with("sandbox: enforced\n"), "{text}");
        for p in [
            Path::new("/etc/passwd"),
            &d.outside,
            Path::new("/proc/self/environ"),
        ] {
            let l = line(p);
            assert!(l.contains(": denied ("), "{l}");
        }
    } else {
        assert!(text.starts_with("sandbox: not supported"), "{text}");
    }
    assert_eq!(
        line(&inside),
        format!("read {}: allowed (6 bytes)", inside.display())
    );

    // Disabled, the same reads go through.
    std::fs::write(
        &d.config,
        format!(
            "[store]\ndir = \"{}\"\n[sandbox]\nenabled = false\n",
            d.store.display()
        ),
    )
    .unwrap();
    let out = mudrock()
        .arg("--config")
        .arg(&d.config)
        .arg("sandbox")
        .arg("--try-read")
        .arg(&d.outside)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("sandbox: disabled\n"), "{text}");
    assert!(text.contains(": allowed (6 bytes)"), "{text}");
}

/// Landlock binds the thread that applies it: a thread of this test
/// process stands in for a sandboxed worker's main thread.
#[test]
fn rust_code_in_a_sandboxed_thread_cannot_read_outside() {
    if !landlock_here() {
        eprintln!("no Landlock in this kernel: nothing to enforce");
        return;
    }
    let d = dirs();
    let store = d.store.clone();
    let outside = d.outside.clone();
    let scratch = d.root.join("scratch");
    let r = std::thread::spawn(move || {
        let paths = Paths::new(
            &SandboxConfig::default(),
            vec![],
            vec![store.clone(), scratch.clone()],
        );
        let status = apply(&SandboxConfig::default(), &paths).unwrap();
        let inside = std::fs::read_to_string(store.join("project-local/inside.txt"));
        let written = std::fs::write(scratch.join("x"), "x");
        let secret = std::fs::read_to_string(&outside);
        let listing = std::fs::read_dir("/etc").map(|_| ());
        (
            status,
            inside.ok(),
            written.is_ok(),
            secret.map_err(|e| e.kind()),
            listing.map_err(|e| e.kind()),
        )
    })
    .join()
    .unwrap();
    assert_eq!(r.0, Status::Enforced);
    assert_eq!(r.1.as_deref(), Some("inside"));
    assert!(r.2, "the scratch directory is writable");
    assert_eq!(r.3, Err(std::io::ErrorKind::PermissionDenied));
    assert_eq!(r.4, Err(std::io::ErrorKind::PermissionDenied));
    // This thread was never restricted.
    assert_eq!(std::fs::read_to_string(&d.outside).unwrap(), "secret");
}

/// Every TLS root the system lists stays readable inside the sandbox,
/// wherever its symlink points (Debian links locally installed CAs from
/// /usr/local/share/ca-certificates): an HTTPS S3 endpoint signed by a
/// site CA must still verify.
#[test]
fn every_tls_root_is_readable_in_the_sandbox() {
    if !landlock_here() {
        eprintln!("no Landlock in this kernel: nothing to enforce");
        return;
    }
    let roots: Vec<std::path::PathBuf> = match std::fs::read_dir("/etc/ssl/certs") {
        Ok(dir) => dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| std::fs::read(p).is_ok())
            .collect(),
        Err(_) => return,
    };
    assert!(!roots.is_empty());
    let d = dirs();
    let store = d.store.clone();
    let unreadable = std::thread::spawn(move || {
        let paths = Paths::new(&SandboxConfig::default(), vec![], vec![store]);
        assert_eq!(
            apply(&SandboxConfig::default(), &paths).unwrap(),
            Status::Enforced
        );
        roots
            .into_iter()
            .filter(|p| std::fs::read(p).is_err())
            .map(|p| format!("{} -> {:?}", p.display(), std::fs::canonicalize(&p)))
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert!(unreadable.is_empty(), "{unreadable:#?}");
}

/// The sandbox's allowed paths are enough to run a pipeline.
#[test]
fn a_pipeline_runs_inside_the_sandbox() {
    let d = dirs();
    let data = d.root.join("data.csv");
    std::fs::write(&data, "id,v\n1,10\n2,20\n").unwrap();
    let up = mudrock()
        .arg("--config")
        .arg(&d.config)
        .arg("upload")
        .arg(&data)
        .args(["--to", "shared/"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let pipeline = d.root.join("p.json");
    std::fs::write(
        &pipeline,
        r#"{"id": "sandboxed", "name": "sandboxed", "nodes": [
            {"id": "t", "nodeType": "ingestion", "config": {"source": "shared/data.csv"}},
            {"id": "f", "nodeType": "operator", "config": {"operator": "filter", "predicate": "v > 10"}, "dependencies": ["t"]},
            {"id": "out", "nodeType": "output", "config": {}, "dependencies": ["f"]}
        ], "edges": []}"#,
    )
    .unwrap();
    let out = mudrock()
        .arg("--config")
        .arg(&d.config)
        .arg("run")
        .arg(&pipeline)
        .arg("--json")
        .env("RUST_LOG", "mudrock=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    if landlock_here() {
        assert!(
            stderr.contains("sandbox") && stderr.contains("\"enforced\""),
            "{stderr}"
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["status"], "succeeded", "{meta}");
}
