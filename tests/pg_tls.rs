//! PostgreSQL over TLS: a throwaway cluster (the system's initdb/pg_ctl)
//! that accepts only TLS connections, with a certificate signed by a test
//! CA. mudrock connects with `sslmode=verify-full&sslrootcert=CA` (its
//! migrations run over it), and is refused when given another CA.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("no {name}"))
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Runs a PostgreSQL tool, as user postgres when we are root (initdb
/// refuses root).
fn as_pg(bin: &str, args: &[&str]) {
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin(bin))
            .args(args)
            .output()
    } else {
        Command::new(pg_bin(bin)).args(args).output()
    }
    .unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Cluster {
    data: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .args(["-D", &self.data, "-m", "immediate", "stop"])
                .output()
        } else {
            Command::new(pg_bin("pg_ctl"))
                .args(["-D", &self.data, "-m", "immediate", "stop"])
                .output()
        };
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn mudrock_reaches_postgresql_over_verified_tls_and_refuses_a_wrong_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::tls::ca(d, "right-ca", true);
    common::tls::ca(d, "wrong-ca", false);
    let data = d.join("data");
    if is_root() {
        Command::new("chown")
            .args(["-R", "postgres", &d.display().to_string()])
            .status()
            .unwrap();
    }
    let data_s = data.display().to_string();
    as_pg("initdb", &["-D", &data_s, "-A", "trust", "-U", "postgres"]);
    let cluster = Cluster {
        data: data_s.clone(),
    };
    std::fs::copy(d.join("server.pem"), data.join("server.crt")).unwrap();
    std::fs::copy(d.join("server.key"), data.join("server.key")).unwrap();
    if is_root() {
        Command::new("chown")
            .args([
                "postgres",
                &data.join("server.crt").display().to_string(),
                &data.join("server.key").display().to_string(),
            ])
            .status()
            .unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let port = free_port();
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    conf.push_str(&format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{data_s}'\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
    ));
    std::fs::write(data.join("postgresql.conf"), conf).unwrap();
    // TLS only: plain TCP connections are rejected.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    as_pg(
        "pg_ctl",
        &["-D", &data_s, "-l", &format!("{data_s}/log"), "-w", "start"],
    );

    let url = |ca: &str, mode: &str| {
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode={mode}&sslrootcert={}",
            d.join(ca).display()
        )
    };
    // verify-full with the right CA: connected, over TLS.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url("right-ca.pem", "verify-full"))
        .await
        .unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl);
    // mudrock's own path: migrations over it.
    let out = Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args([
            "migrate",
            "--database-url",
            &url("right-ca.pem", "verify-full"),
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(applied >= 9, "{applied}");

    // Another CA: refused, by mudrock too; no TLS: refused by the server.
    let err = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&url("wrong-ca.pem", "verify-full"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mudrock"))
        .args([
            "migrate",
            "--database-url",
            &url("wrong-ca.pem", "verify-full"),
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=disable"
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    drop(cluster);
}
