//! The configuration's layering, sections and limits.

use super::*;

#[test]
fn defaults_then_file_then_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "mudrock.toml",
            r#"
            [store]
            kind = "s3"
            bucket_prefix = "acme-"
            [store.s3]
            endpoint = "http://file:9000"
            region = "eu-west-1"
            "#,
        )?;
        jail.set_env("MUDROCK_STORE__S3__ENDPOINT", "http://env:9000");
        jail.set_env("MUDROCK_ENGINE__CONCURRENCY", "7");
        jail.set_env("MUDROCK_PROJECT", "not-config");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.store.kind, StoreKind::S3, "file over defaults");
        assert_eq!(c.store.s3.region, "eu-west-1");
        assert_eq!(
            c.store.s3.endpoint.as_deref(),
            Some("http://env:9000"),
            "environment over file"
        );
        assert_eq!(c.engine.concurrency, 7);
        assert_eq!(c.store.s3.part_size, 16 << 20, "defaults fill the rest");
        assert_eq!(c.bucket(Some("p1")), "acme-p1");
        assert_eq!(c.bucket(None), "acme-local");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[store]\nknd = \"s3\"\n")?;
        let e = Config::load(Some(Path::new("bad.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("knd"), "{e}");
        assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
        Ok(())
    });
}

#[test]
fn limits_and_the_sandbox_are_configured_like_the_rest() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "l.toml",
            "[engine]\nmax_pivot_columns = 7\nmax_scratch_mb = 2\n[limits]\nmax_nodes = 3\n\
             [sandbox]\nextra_read = [\"/opt/certs\"]\n",
        )?;
        jail.set_env("MUDROCK_SANDBOX__ENABLED", "false");
        jail.set_env("MUDROCK_ENGINE__MAX_JOIN_ROWS", "99");
        let c = Config::load(Some(Path::new("l.toml"))).map_err(|e| e.to_string())?;
        let run = c.engine.limits();
        assert_eq!(run.ops.max_pivot_columns, 7);
        assert_eq!(run.ops.max_join_rows, 99);
        assert_eq!(run.max_scratch_bytes, 2 << 20);
        assert_eq!(run.max_glob_matches, 10_000, "defaults fill the rest");
        assert_eq!(c.limits.max_nodes, 3);
        assert_eq!(c.limits.max_expression_chars, 10_000);
        assert!(!c.sandbox.enabled);
        assert_eq!(c.sandbox.extra_read, [PathBuf::from("/opt/certs")]);
        jail.create_file("bad.toml", "[limits]\nmax_node = 3\n")?;
        let e = Config::load(Some(Path::new("bad.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_node"), "{e}");
        Ok(())
    });
}

#[test]
fn the_engine_section_decides_streaming() {
    use crate::engine::{RunOptions, Streaming};
    figment::Jail::expect_with(|jail| {
        let p: crate::model::pipeline::Pipeline = crate::validate::validate(
            serde_json::json!({"id": "p", "name": "p", "edges": [], "nodes": [
                {"id": "a", "nodeType": "ingestion", "config": {"source": "a.csv"}}
            ]}),
            Default::default(),
        )
        .map(|(p, _)| p)
        .map_err(|r| r.to_string())?;
        let mut o = RunOptions::local(&p);
        let c = Config::load(None).map_err(|e| e.to_string())?;
        c.engine.apply(&mut o);
        assert_eq!(o.streaming, Streaming::Auto);
        assert!(
            !o.streams(2 << 30, false) && o.streams((2 << 30) + 1, false),
            "auto: above 2 GiB"
        );
        assert!(o.streams(0, true), "auto: row-wise units whatever the size");

        jail.create_file(
            "m.toml",
            "[engine]\nstreaming = \"auto\"\nstreaming_above_mb = 1\n",
        )?;
        let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| e.to_string())?;
        c.engine.apply(&mut o);
        assert!(!o.streams(1 << 20, false) && o.streams((1 << 20) + 1, false));

        jail.set_env("MUDROCK_ENGINE__STREAMING", "never");
        let c = Config::load(Some(Path::new("m.toml"))).map_err(|e| e.to_string())?;
        c.engine.apply(&mut o);
        assert!(!o.streams(u64::MAX, true), "never");

        jail.set_env("MUDROCK_ENGINE__STREAMING", "sometimes");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("sometimes"), "{e}");
        Ok(())
    });
}
