//! docker-compose.yml cannot be run here (no Docker engine), so it is
//! checked instead: validated by `docker-compose config` (the compose
//! file parser and schema), and its wiring checked against what mudrock
//! reads: the environment it gives mudrock must load into the intended
//! configuration.

use std::process::Command;

use mudrock::app::config::{Config, StoreKind};
use serde_json::Value;

fn normalized() -> Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root)
        .output()
        .expect("docker-compose is not installed: run the suite with scripts/test.sh, which installs it");
    assert!(
        out.status.success(),
        "docker-compose rejects the file:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PyYAML comes with docker-compose: turn its YAML into JSON.
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml, json; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).unwrap()
}

#[test]
fn the_compose_file_is_valid_and_wires_mudrock_to_minio() {
    let c = normalized();
    let services = c["services"].as_object().unwrap();
    for s in [
        "postgres", "minio", "seed", "migrate", "worker", "serve", "example",
    ] {
        assert!(services.contains_key(s), "service {s}");
    }
    assert!(
        c["services"]["minio"]["healthcheck"]["test"].is_array(),
        "minio has a health check"
    );
    assert!(c["services"]["postgres"]["healthcheck"]["test"].is_array());
    // Migrate once, then the workers (and the example) start.
    assert_eq!(
        c["services"]["migrate"]["command"],
        serde_json::json!(["migrate"])
    );
    assert_eq!(
        c["services"]["migrate"]["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        c["services"]["worker"]["command"],
        serde_json::json!(["worker"])
    );
    for s in ["worker", "example"] {
        let deps = &c["services"][s]["depends_on"];
        assert_eq!(
            deps["migrate"]["condition"], "service_completed_successfully",
            "{s}"
        );
        assert_eq!(deps["minio"]["condition"], "service_healthy", "{s}");
    }
    assert_eq!(
        c["services"]["example"]["depends_on"]["seed"]["condition"],
        "service_completed_successfully"
    );

    // The workers get the whole grace period on SIGTERM, and more.
    let grace = mudrock::service::worker::WorkerConfig::default().shutdown_grace_seconds;
    let stop = c["services"]["worker"]["stop_grace_period"]
        .as_str()
        .unwrap();
    assert!(stop.ends_with('s'), "{stop}");
    let stop: u64 = stop.trim_end_matches('s').parse().unwrap();
    assert!(stop > grace, "stop_grace_period {stop}s <= grace {grace}s");

    // Every mudrock service has the same environment, with a database.
    for s in ["migrate", "worker", "example"] {
        assert_eq!(
            c["services"][s]["environment"],
            c["services"]["worker"]["environment"]
        );
    }
    assert!(
        c["services"]["worker"]["environment"]["DATABASE_URL"]
            .as_str()
            .unwrap()
            .contains("@postgres:5432/")
    );

    // The credentials mudrock uses are MinIO's root user.
    let env = c["services"]["worker"]["environment"]
        .as_object()
        .unwrap()
        .clone();
    let minio = &c["services"]["minio"]["environment"];
    assert_eq!(
        env["MUDROCK_STORE__S3__ACCESS_KEY_ID"],
        minio["MINIO_ROOT_USER"]
    );
    assert_eq!(
        env["MUDROCK_STORE__S3__SECRET_ACCESS_KEY"],
        minio["MINIO_ROOT_PASSWORD"]
    );

    // And mudrock reads that environment as an S3 store on MinIO.
    figment::Jail::expect_with(|jail| {
        for (k, v) in &env {
            jail.set_env(k, v.as_str().unwrap());
        }
        let cfg = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(cfg.store.kind, StoreKind::S3);
        assert_eq!(cfg.store.s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(cfg.store.s3.access_key_id.as_deref(), Some("mudrock"));
        assert!(cfg.store.s3.force_path_style);
        Ok(())
    });

    // `serve` runs the API and a worker on the same store and database,
    // listening where its port is published, with a usable token secret.
    let serve = &c["services"]["serve"];
    assert_eq!(
        serve["ports"][0]["target"]
            .as_u64()
            .or_else(|| serve["ports"][0].as_str().and_then(|p| p
                .rsplit(':')
                .next()?
                .parse()
                .ok())),
        Some(8080),
        "{}",
        serve["ports"]
    );
    assert_eq!(
        serve["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    let serve_env = serve["environment"].as_object().unwrap().clone();
    for (k, v) in &env {
        assert_eq!(serve_env.get(k), Some(v), "serve shares {k}");
    }
    figment::Jail::expect_with(|jail| {
        for (k, v) in &serve_env {
            jail.set_env(k, v.as_str().unwrap());
        }
        let cfg = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(cfg.api.listen, "0.0.0.0:8080");
        mudrock::api::Authenticator::from_config(&cfg.api.jwt).map_err(|e| e.to_string())?;
        Ok(())
    });
    let cmd = serve["command"].to_string();
    assert!(cmd.contains("\"serve\"") && cmd.contains("json"), "{cmd}");

    // The seed step fills the bucket the example runs in.
    let seed = c["services"]["seed"]["command"].to_string();
    assert!(seed.contains("local/project-local/shared/sales/"), "{seed}");
}
